# 3.14: CPython 3.14.2 keeps a NOP that native removes (break inside try inside while True)
def f():
    while True:
        try:
            r = g()
            if not r: break
        except E:
            break
        h(r)
