# 3.12: RAISE_VARARGS of assert located at the test (native) vs the whole `assert` (3.12.1)
def f(a):
    assert a, "m"
