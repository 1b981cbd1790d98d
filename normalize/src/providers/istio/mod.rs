//! Istio / Envoy service-mesh formats (provider `kubernetes`, per DESIGN.md: "kubernetes
//! (including cert-manager and service-mesh access logs)").

pub mod access;
