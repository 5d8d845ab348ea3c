//! One module per subcommand.

pub mod approve;
pub mod audit;
pub mod config;
pub mod connect;
pub mod doctor;
pub mod gateway;
pub mod key;
pub mod mcp;
pub mod proxy;
pub mod run;
pub mod tunnel;
pub mod up;
