//! The cache: what may be stored and for how long (`control`, `policy`), how objects are
//! named and told apart (`key`, `vary`), how stored objects answer conditional and range
//! requests (`conditional`, `range`), and where they live (`object`, `store`).

pub mod conditional;
pub mod control;
pub mod fields;
pub mod key;
pub mod keyhash;
pub mod object;
pub mod policy;
pub mod range;
pub mod store;
pub mod vary;
