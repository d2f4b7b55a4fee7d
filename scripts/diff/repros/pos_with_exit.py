# 3.12: the with-exit instructions located at the context expression (native) vs the whole `with` (3.12.1)
def f(m):
    with m:
        pass
