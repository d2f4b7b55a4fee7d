# 3.12: a method call on an imported name inside a module-level comprehension: 3.12.1 emits
# PUSH_NULL + LOAD_ATTR (no method call, the name is import-originated); native the method form
import six
x = [six.unichr(c) for c in r]
