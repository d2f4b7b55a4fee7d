# 3.14: native jumps (JUMP_BACKWARD_NO_INTERRUPT) to one `return 6`; 3.14.2 duplicates LOAD_SMALL_INT/RETURN_VALUE
def func():
    try:
        2/0
    except IndexError:
        4
    finally:
        return 6
