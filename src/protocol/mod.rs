//! Sans-I/O codecs for the wire protocols kaiser speaks: the uwsgi binary packet and
//! HTTP/1.1. Nothing here touches a socket, a file or Python; nothing here imports another
//! module of this crate.
