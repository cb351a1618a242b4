//! Thymis core library.
