# 3.12, 3.13: the pattern value 0 - 0j is folded to -0j (imag -0.0) by native, 0j by CPython
# (3.14's mixed int/complex arithmetic gives -0.0; 3.12/3.13 give +0.0). A value difference.
def f(x):
    match x:
        case 0 - 0j:
            pass
