//! SCRAM's shared ground (RFC 5802, RFC 7677, Kafka's `ScramMechanism`): the mechanisms with
//! their names and codes, and the primitives both ends compute with (salted password, HMAC,
//! hash, fresh salts and nonces), all ring's. The client's exchange is in `sasl`; the broker's,
//! and the credentials it keeps, in the broker's `security::scram`.

use std::num::NonZeroU32;

use ring::{digest, hmac, pbkdf2, rand::SecureRandom};

/// SASL mechanisms (`sasl.enabled.mechanisms`, `sasl.mechanism`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub fn parse(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            "SCRAM-SHA-256" => Some(Mechanism::ScramSha256),
            "SCRAM-SHA-512" => Some(Mechanism::ScramSha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// Kafka's SCRAM mechanism code (User SCRAM credential APIs): 1 SCRAM-SHA-256,
    /// 2 SCRAM-SHA-512; PLAIN has none.
    pub fn scram_code(self) -> Option<i8> {
        match self {
            Mechanism::ScramSha256 => Some(1),
            Mechanism::ScramSha512 => Some(2),
            Mechanism::Plain => None,
        }
    }

    pub fn from_scram_code(code: i8) -> Option<Mechanism> {
        match code {
            1 => Some(Mechanism::ScramSha256),
            2 => Some(Mechanism::ScramSha512),
            _ => None,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Mechanism::ScramSha512 => pbkdf2::PBKDF2_HMAC_SHA512,
            _ => pbkdf2::PBKDF2_HMAC_SHA256,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Mechanism::ScramSha512 => hmac::HMAC_SHA512,
            _ => hmac::HMAC_SHA256,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Mechanism::ScramSha512 => &digest::SHA512,
            _ => &digest::SHA256,
        }
    }
}

/// Kafka's bounds on the iteration count (`ScramMechanism`): fewer is too cheap to attack.
pub const ITERATIONS_MIN: u32 = 4096;
pub const ITERATIONS_MAX: u32 = 16384;

/// SaltedPassword = Hi(password, salt, i).
pub fn salted_password(m: Mechanism, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; m.digest().output_len()];
    let i = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(m.pbkdf2(), i, salt, password, &mut out);
    out
}

pub fn mac(m: Mechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(m.hmac(), key), data).as_ref().to_vec()
}

pub fn hash(m: Mechanism, data: &[u8]) -> Vec<u8> {
    digest::digest(m.digest(), data).as_ref().to_vec()
}

/// `n` bytes from the system's random number generator (salts, nonces).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    // The system RNG failing leaves zeros; refuse to hand those out as salts or nonces.
    ring::rand::SystemRandom::new().fill(&mut out).expect("the system random number generator works");
    out
}

/// A fresh random salt and the password salted with it (what AlterUserScramCredentials sends).
pub fn new_salted(m: Mechanism, password: &str, iterations: u32) -> (Vec<u8>, Vec<u8>) {
    let salt = random_bytes(32);
    let salted = salted_password(m, password.as_bytes(), &salt, iterations);
    (salt, salted)
}
