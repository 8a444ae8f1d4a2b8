use gild_lambda::{optional, ConfigError};

/// Read once at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `GILD_RESPONSE_ALLOW_INSECURE_LOOPBACK=1`, for tests only: accept an
    /// `http://` response URL on a loopback address (the harness standing
    /// in for CloudFormation's S3 bucket). Any other URL must be https.
    pub allow_insecure_loopback: bool,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let flag = optional("GILD_RESPONSE_ALLOW_INSECURE_LOOPBACK", "0".to_owned())?;
        let allow_insecure_loopback = match flag.as_str() {
            "1" | "true" => true,
            "0" | "false" => false,
            _ => {
                return Err(ConfigError::Invalid {
                    name: "GILD_RESPONSE_ALLOW_INSECURE_LOOPBACK",
                    value: flag,
                    problem: "expected 1 or 0".into(),
                })
            }
        };
        Ok(Config {
            allow_insecure_loopback,
        })
    }
}
