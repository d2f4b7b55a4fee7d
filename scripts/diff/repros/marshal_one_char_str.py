# 3.12: native writes a one-character string constant as interned ('Z'), 3.12.1 as not ('z')
s = "."
