//! Task definitions and the images they run: image references and the
//! immutable-tag policy, rendering a task definition with new images and
//! environment, and normalising for comparison (pure: no AWS types).

pub mod image;
pub mod render;
