//! A stand-in for the Wacht services.

pub mod demo;
pub mod server;
pub mod tokens;
pub mod users;

pub use server::{
    Credential, DEPLOYMENT_ID, Endpoint, FOREIGN_DEPLOYMENT_ID, Fault, Identity, PrincipalType,
    Recorded, StandIn, StandInConfig, publishable_key_for, random_secret,
};
pub use users::{User, sample_users};
