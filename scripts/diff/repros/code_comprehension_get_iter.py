# 3.13: native adds a second GET_ITER (inlined list comprehension, and inside the genexpr code)
# 3.12: GET_ITER/FOR_ITER/END_FOR located at the iterable (native) vs the whole comprehension (3.12.1)
def f(a):
    return [x for x in a]


def g(a):
    return (x for x in a)
