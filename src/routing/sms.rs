//! SMS routing: the account's `destination_network_id` as SMPP TLV 0x060E.

use super::output::push_decimal;
use serde::ser::{Serialize, SerializeStruct, Serializer};

/// SMPP `dest_network_id`.
pub const DEST_NETWORK_ID_TAG: u16 = 0x060E;

/// One TLV for `submit_sm`. Serialised with both encodings engines use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv {
    pub tag: u16,
    pub value: u32,
}

impl Tlv {
    pub fn dest_network_id(id: u32) -> Tlv {
        Tlv {
            tag: DEST_NETWORK_ID_TAG,
            value: id,
        }
    }

    pub fn name(&self) -> &'static str {
        match self.tag {
            DEST_NETWORK_ID_TAG => "dest_network_id",
            _ => "unknown",
        }
    }

    /// 4-byte big-endian integer, as Restcomm sends it.
    pub fn value_bytes(&self) -> [u8; 4] {
        self.value.to_be_bytes()
    }

    /// SMPP 5.0 C-octet string: the ASCII digits and a NUL.
    pub fn cstring_bytes(&self) -> Vec<u8> {
        let mut bytes = self.value.to_string().into_bytes();
        bytes.push(0);
        bytes
    }

    /// `value_bytes` in uppercase hex (1000 → `000003E8`).
    pub fn value_hex(&self) -> String {
        hex::encode_upper(self.value_bytes())
    }

    /// `cstring_bytes` in uppercase hex (1000 → `3130303000`).
    pub fn cstring_hex(&self) -> String {
        hex::encode_upper(self.cstring_bytes())
    }
}

impl Tlv {
    /// Appends the docs/api.md JSON object (what `Serialize` gives) without intermediate strings.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"tag\":");
        push_decimal(out, self.tag.into());
        out.extend_from_slice(b",\"name\":\"");
        out.extend_from_slice(self.name().as_bytes());
        out.extend_from_slice(b"\",\"value\":\"");
        push_decimal(out, self.value);
        out.extend_from_slice(b"\",\"value_hex\":\"");
        for byte in self.value_bytes() {
            push_hex(out, byte);
        }
        out.extend_from_slice(b"\",\"cstring_hex\":\"");
        for &digit in itoa::Buffer::new().format(self.value).as_bytes() {
            push_hex(out, digit);
        }
        out.extend_from_slice(b"00\"}");
    }
}

fn push_hex(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(&[HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 15)]]);
}

impl Serialize for Tlv {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_struct("Tlv", 5)?;
        t.serialize_field("tag", &self.tag)?;
        t.serialize_field("name", self.name())?;
        t.serialize_field("value", &self.value.to_string())?;
        t.serialize_field("value_hex", &self.value_hex())?;
        t.serialize_field("cstring_hex", &self.cstring_hex())?;
        t.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        let t = Tlv::dest_network_id(1000);
        assert_eq!(t.tag, 1550);
        assert_eq!(t.name(), "dest_network_id");
        assert_eq!(t.value_hex(), "000003E8");
        assert_eq!(t.cstring_hex(), "3130303000");
        let t = Tlv::dest_network_id(0);
        assert_eq!(
            (t.value_hex().as_str(), t.cstring_hex().as_str()),
            ("00000000", "3000")
        );
        assert_eq!(Tlv::dest_network_id(2_147_483_647).value_hex(), "7FFFFFFF");
        for n in [0, 7, 1000, 2_147_483_647] {
            let t = Tlv::dest_network_id(n);
            let mut out = Vec::new();
            t.write_json(&mut out);
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&out).unwrap(),
                serde_json::to_value(t).unwrap()
            );
        }
        assert_eq!(
            serde_json::to_value(Tlv::dest_network_id(1000)).unwrap(),
            serde_json::json!({"tag": 1550, "name": "dest_network_id", "value": "1000",
                               "value_hex": "000003E8", "cstring_hex": "3130303000"})
        );
    }
}
