//! SMS routing: the account's `destination_network_id` as SMPP TLV 0x060E.

use serde::Serialize;

/// SMPP `dest_network_id`.
pub const DEST_NETWORK_ID_TAG: u16 = 0x060E;

/// One TLV for `submit_sm`, with both encodings engines use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tlv {
    pub tag: u16,
    pub name: &'static str,
    /// Canonical decimal.
    pub value: String,
    /// 4-byte big-endian integer, as Restcomm sends it (1000 → `000003E8`).
    pub value_hex: String,
    /// SMPP 5.0 C-octet string: the ASCII digits and a NUL (1000 → `3130303000`).
    pub cstring_hex: String,
}

impl Tlv {
    pub fn dest_network_id(id: u32) -> Tlv {
        let value = id.to_string();
        let mut cstring = value.clone().into_bytes();
        cstring.push(0);
        Tlv {
            tag: DEST_NETWORK_ID_TAG,
            name: "dest_network_id",
            value_hex: hex::encode_upper(id.to_be_bytes()),
            cstring_hex: hex::encode_upper(cstring),
            value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        let t = Tlv::dest_network_id(1000);
        assert_eq!(t.tag, 1550);
        assert_eq!(t.value, "1000");
        assert_eq!(t.value_hex, "000003E8");
        assert_eq!(t.cstring_hex, "3130303000");
        let t = Tlv::dest_network_id(0);
        assert_eq!(
            (t.value_hex.as_str(), t.cstring_hex.as_str()),
            ("00000000", "3000")
        );
        let t = Tlv::dest_network_id(2_147_483_647);
        assert_eq!(t.value_hex, "7FFFFFFF");
    }
}
