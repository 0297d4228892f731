//! `verdict audit report`: one self-contained HTML page from an evidence package (issue 16
//! item 5; package layout `spec/evidence-package.md`; guide `docs/auditor-guide.md`).
//!
//! Two steps, tested apart: [`data`] reads the package's entries once, in index order, into a
//! [`data::ReportData`] of counts (memory bounded by days, rules and versions, never by the
//! number of entries); [`html`] renders it with the [`charts`] (plotters, SVG backend) and the
//! [`mapping`] to ISO/IEC 42001 Annex A and the EU AI Act.
//!
//! The page has inline CSS and SVG, no script, and a Content-Security-Policy of
//! `default-src 'none'`: opening it fetches nothing.

pub mod charts;
pub mod data;
pub mod html;
pub mod mapping;
