//! The cache: what may be stored and for how long (`control`, `policy`), how objects are
//! named and told apart (`key`, `vary`), how stored objects answer conditional and range
//! requests (`conditional`, `range`), incomplete (206) responses and how their parts join
//! (`partial`), and where they live (`object`, `store`). The rest
//! of lacquer goes through one front door, [`Cache`] (`front`).

pub mod conditional;
pub mod control;
pub mod fields;
pub mod front;
pub mod key;
pub mod keyhash;
pub mod object;
pub mod partial;
pub mod policy;
pub mod range;
pub mod store;
pub mod vary;

pub use front::{
    Admission, Admitted, Cache, Fetched, PassReason, Push, PushRefused, Refreshed, Rules, Stats,
    Target, Times,
};
