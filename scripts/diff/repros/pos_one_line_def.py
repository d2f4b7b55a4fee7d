# 3.12: the implicit return of a one-line def located at the body (native) vs line only (3.12.1)
def f(): pass
