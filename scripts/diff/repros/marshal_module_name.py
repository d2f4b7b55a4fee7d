# 3.12: native writes the name '<module>' as an interned string ('Z'), 3.12.1 as not interned ('z')
x = 1
