//! SMS TLVs.
#[derive(Debug, Clone)]
pub struct Tlv {}
