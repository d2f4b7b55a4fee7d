# 3.12: an expression statement holding a comprehension over a yield: positions differ (Expr vs its value)
def g(): [x for x in [(yield 1)]]
