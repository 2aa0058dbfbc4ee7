//! Inbound protected hospital discharge (dimissione protetta).
