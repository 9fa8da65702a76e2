//! Startup checks across sections: what one section names must exist in another.

use crate::authz::Policy;
use crate::error::ConfigError;

use super::Config;

impl Config {
    /// Refuses validation operations, quota costs and quota `routes` that name no route the
    /// policy declares: they would never apply (or, for validation, answer 500 at the first
    /// request).
    pub(super) fn check_routes(&self, policy: &Policy) -> Result<(), ConfigError> {
        let undeclared = |field: &'static str, item: String| ConfigError::Invalid {
            field,
            message: format!("{item}: no rule of `routes` declares it"),
        };
        for (i, op) in self.validation.operations.iter().enumerate() {
            let method = http::Method::from_bytes(op.method.to_ascii_uppercase().as_bytes())
                .map_err(|_| ConfigError::Invalid {
                    field: "validation.operations",
                    message: format!("[{i}]: `{}` is not an HTTP method", op.method),
                })?;
            if !policy.covers(Some(&method), &op.path) {
                return Err(undeclared(
                    "validation.operations",
                    format!("[{i}] ({method} {})", op.path),
                ));
            }
        }
        for (i, cost) in self.quota.costs.iter().enumerate() {
            if !policy.covers(None, &cost.path) {
                return Err(undeclared("quota.costs", format!("[{i}] ({})", cost.path)));
            }
        }
        for (stage, rules) in [
            ("quota.clients", &self.quota.clients),
            ("quota.principals", &self.quota.principals),
        ] {
            for (i, rule) in rules.iter().enumerate() {
                for route in rule.routes.iter().flatten() {
                    if !policy.covers(None, route) {
                        return Err(undeclared(stage, format!("[{i}].routes ({route})")));
                    }
                }
            }
        }
        Ok(())
    }
}
