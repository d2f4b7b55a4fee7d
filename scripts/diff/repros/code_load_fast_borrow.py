# 3.14: native emits LOAD_FAST_BORROW where 3.14.2 emits LOAD_FAST (reduced from ssl.SSLSocket._create)
class C:
    def _create(cls, sock, server_side=False, do_handshake_on_connect=True,
                context=None, session=None):
        if server_side:
            if server_hostname:
                raise ValueError("server_hostname can only be specified "
                                 "in client mode")
                raise ValueError("session can only be specified in "
                                 "client mode")
        kwargs = dict(
        )
        try:
            self.getpeername()
        except OSError as e:
            if e.errno != errno.ENOTCONN:
                raise
            try:
                notconn_pre_handshake_data = self.recv(1)
            except OSError as e:
                try:
                    self.close()
                except OSError:
                    pass
                try:
                    raise notconn_pre_handshake_data_error
                finally:
                    notconn_pre_handshake_data_error = None
                self._sslobj = self._context._wrap_socket(
                )
                if do_handshake_on_connect:
                    if timeout == 0.0:
                        raise ValueError("do_handshake_on_connect should not be specified for non-blocking sockets")
