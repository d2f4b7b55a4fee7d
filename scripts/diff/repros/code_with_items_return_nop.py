# 3.12: parenthesized multi-line with-items and a return: native keeps a NOP for the inner
# item's exit (a consequence of the with-exit positions above)
def f():
    with (a(),
          b()):
        return g()
