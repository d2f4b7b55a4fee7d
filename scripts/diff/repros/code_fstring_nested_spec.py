# 3.12: a format spec that is only a replacement field: 3.12.1 builds it with LOAD_CONST ''
# + BUILD_STRING (and a larger co_stacksize); native does not
def f(x, w):
    return f"x={x:{w}}"
