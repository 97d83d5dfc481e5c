//! The client SCRAM verifier: derived once at start, shared by every handshake. It lives apart
//! from the handshake so that the context that holds it does not import the stage that uses it.

use pgwire::api::auth::sasl::scram::{ScramSecret, gen_salted_password};

const SCRAM_ITERATIONS: usize = 4096;

/// The client's SCRAM credentials, derived once at start from the configured password, so no
/// password is kept in memory per connection.
pub struct ScramVerifier {
    pub user: String,
    salt: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl ScramVerifier {
    pub fn new(user: &str, password: &str) -> ScramVerifier {
        let salt = rand::random::<[u8; 16]>().to_vec();
        let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
        let ScramSecret::Verifier {
            stored_key,
            server_key,
            ..
        } = ScramSecret::verifier_from_salted_password(salt.clone(), salted, SCRAM_ITERATIONS)
        else {
            unreachable!("verifier_from_salted_password returns a Verifier")
        };
        ScramVerifier {
            user: user.to_owned(),
            salt,
            stored_key,
            server_key,
        }
    }

    pub(super) fn secret(&self) -> ScramSecret {
        ScramSecret::Verifier {
            salt: self.salt.clone(),
            iterations: SCRAM_ITERATIONS,
            stored_key: self.stored_key.clone(),
            server_key: self.server_key.clone(),
        }
    }
}
