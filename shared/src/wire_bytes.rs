//! Optional bytes in API bodies: a byte string in binary formats (CBOR), a
//! base64 string in JSON, chosen by the format itself
//! (`is_human_readable`), so one type serves both.

use base64::Engine;
use serde::{Deserialize, Deserializer, Serializer};

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        None => s.serialize_none(),
        Some(bytes) if s.is_human_readable() => s.serialize_some(&BASE64.encode(bytes)),
        Some(bytes) => s.serialize_some(&serde_bytes::Bytes::new(bytes)),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    if d.is_human_readable() {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| BASE64.decode(t.trim()))
            .transpose()
            .map_err(|_| serde::de::Error::custom("expected base64"))
    } else {
        Ok(Option::<serde_bytes::ByteBuf>::deserialize(d)?.map(serde_bytes::ByteBuf::into_vec))
    }
}

#[cfg(test)]
mod tests {
    use crate::api::SyncBatchItem;

    #[test]
    fn json_carries_base64_and_cbor_carries_bytes() {
        let item = SyncBatchItem {
            plan: "p".into(),
            message: Some(vec![0x42, 0, 255]),
            have: None,
        };
        let json = serde_json::to_string(&item).unwrap_or_default();
        assert_eq!(json, r#"{"plan":"p","message":"QgD/"}"#);
        let mut cbor = Vec::new();
        ciborium::into_writer(&item, &mut cbor).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            cbor.windows(4).any(|w| w == [0x43, 0x42, 0, 255]),
            "a 3-byte string"
        );
        for back in [
            serde_json::from_str::<SyncBatchItem>(&json).map_err(|e| e.to_string()),
            ciborium::from_reader::<SyncBatchItem, _>(cbor.as_slice()).map_err(|e| e.to_string()),
        ] {
            assert_eq!(back.map(|b| b.message), Ok(Some(vec![0x42, 0, 255])));
        }
        let none: SyncBatchItem =
            serde_json::from_str(r#"{"plan":"p"}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(none.message, None);
    }
}
