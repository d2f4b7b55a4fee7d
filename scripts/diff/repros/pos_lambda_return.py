# 3.12: a lambda's RETURN_VALUE located at its body (native) vs line only, columns 0-0 (3.12.1)
f = lambda: 1
