# 3.12-3.14: native shares one frozenset constant between two code objects (FLAG_REF + back-reference);
# CPython writes two separate frozensets. Decoded code objects are equal.
def f():
    return (), k in {"if", "$ref"}


def g():
    return k in {"if", "$ref"}
