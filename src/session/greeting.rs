//! What a client is greeted with at login, without waiting for the pooler.
//!
//! A login used to open the client's pooler upstream and pass on its `ParameterStatus` values,
//! so a pooler that was down or restarting failed the login, and with it the lock path that
//! would have run on the direct lane. Now the login is answered from the last successful login
//! of this process (the pooler's, else the direct lane's), with the client's own startup
//! parameters on top, and the pooler is connected at the client's first pooler unit.

use std::sync::{Arc, Mutex};

/// `ParameterStatus` name and value pairs, in the order a server sent them.
pub type ServerParams = Arc<[(String, String)]>;

/// Server parameters of the last successful login on each lane, shared by every session.
#[derive(Default)]
pub struct LastLogin {
    pooler: Mutex<Option<ServerParams>>,
    direct: Mutex<Option<ServerParams>>,
}

impl LastLogin {
    pub fn record_pooler(&self, params: &[(String, String)]) {
        *self.pooler.lock().unwrap() = Some(params.into());
    }

    pub fn record_direct(&self, params: &[(String, String)]) {
        *self.direct.lock().unwrap() = Some(params.into());
    }

    /// The pooler's values if it was ever reached, else the direct lane's.
    pub fn best(&self) -> Option<ServerParams> {
        let pooler = self.pooler.lock().unwrap().clone();
        pooler.or_else(|| self.direct.lock().unwrap().clone())
    }
}

/// The `ParameterStatus` values a client is greeted with: the server's, with the values the
/// client set itself in its startup message on top, because the server would have reported
/// those. `application_name` belongs to the client that set it, never to the login the values
/// were learned from, so a client that set none sees it empty, as PostgreSQL reports it.
pub fn greeting(server: &[(String, String)], client: &[(String, String)]) -> Vec<(String, String)> {
    let own = |name: &str| {
        client
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut out: Vec<(String, String)> = server
        .iter()
        .map(|(name, value)| {
            let value = match own(name) {
                Some(v) => v,
                None if name == "application_name" => String::new(),
                None => value.clone(),
            };
            (name.clone(), value)
        })
        .collect();
    if !out.iter().any(|(n, _)| n == "application_name") {
        out.push((
            "application_name".to_owned(),
            own("application_name").unwrap_or_default(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn greeting_puts_client_values_over_server_values() {
        let server = pairs(&[
            ("application_name", "someone-else"),
            ("server_version", "15.8"),
            ("TimeZone", "UTC"),
        ]);
        let client = pairs(&[("application_name", "worker"), ("statement_timeout", "5s")]);
        let got = greeting(&server, &client);
        assert_eq!(
            got,
            pairs(&[
                ("application_name", "worker"),
                ("server_version", "15.8"),
                ("TimeZone", "UTC"),
            ])
        );
    }

    #[test]
    fn greeting_without_client_application_name_reports_it_empty() {
        let server = pairs(&[
            ("application_name", "someone-else"),
            ("server_version", "15.8"),
        ]);
        let got = greeting(&server, &[]);
        assert_eq!(got[0], ("application_name".into(), String::new()));
        let got = greeting(&pairs(&[("server_version", "15.8")]), &[]);
        assert!(got.contains(&("application_name".into(), String::new())));
    }

    #[test]
    fn last_login_prefers_the_pooler() {
        let last = LastLogin::default();
        assert!(last.best().is_none());
        last.record_direct(&pairs(&[("server_version", "direct")]));
        assert_eq!(last.best().unwrap()[0].1, "direct");
        last.record_pooler(&pairs(&[("server_version", "pooler")]));
        assert_eq!(last.best().unwrap()[0].1, "pooler");
    }
}
