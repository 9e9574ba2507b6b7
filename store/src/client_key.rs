//! Client keys: a keyed hash of IP + User-Agent, so raw addresses are never stored.

use sha2::{Digest, Sha256};

/// Hashes IP + User-Agent with the database's secret salt (see [`Store::salt`](crate::Store::salt)).
#[derive(Clone)]
pub struct ClientKeyer {
    salt: [u8; 32],
}

impl std::fmt::Debug for ClientKeyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The salt is the secret that keeps keys from being reversed: never print it.
        f.write_str("ClientKeyer { .. }")
    }
}

impl ClientKeyer {
    pub fn new(salt: [u8; 32]) -> Self {
        ClientKeyer { salt }
    }

    /// The first 8 bytes of SHA-256(salt ‖ ip ‖ 0 ‖ user agent), as a signed integer.
    pub fn key(&self, ip: &str, user_agent: Option<&str>) -> i64 {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(ip.as_bytes());
        h.update([0u8]);
        h.update(user_agent.unwrap_or("").as_bytes());
        let out = h.finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&out[..8]);
        i64::from_be_bytes(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_key_changes_with_salt_address_and_user_agent_and_is_stable() {
        let k = ClientKeyer::new([1; 32]);
        let a = k.key("192.0.2.1", Some("ua"));
        assert_eq!(a, ClientKeyer::new([1; 32]).key("192.0.2.1", Some("ua")));
        assert_ne!(a, ClientKeyer::new([2; 32]).key("192.0.2.1", Some("ua")));
        assert_ne!(a, k.key("192.0.2.2", Some("ua")));
        assert_ne!(a, k.key("192.0.2.1", Some("ub")));
        assert_ne!(a, k.key("192.0.2.1", None));
    }

    #[test]
    fn the_debug_form_does_not_show_the_salt() {
        let shown = format!("{:?}", ClientKeyer::new([0xab; 32]));
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("ab, "));
    }
}
