# 3.12, 3.13: 8 constant positional class arguments before **kwargs: CPython builds a list
# (BUILD_LIST, LIST_EXTEND of a constant tuple, CALL_INTRINSIC_1); native pushes the 8 constants
class A(0, 1, 2, 3, 4, 5, 6, 7, **d):
    pass
