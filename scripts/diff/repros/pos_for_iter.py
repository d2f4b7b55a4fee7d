# 3.12: GET_ITER/FOR_ITER/END_FOR located at the iterable (native) vs the whole `for` (3.12.1)
def f(a):
    for x in a:
        pass
