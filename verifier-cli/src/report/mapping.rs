//! The mapping of report evidence to ISO/IEC 42001:2023 Annex A controls and EU AI Act
//! (Regulation (EU) 2024/1689) articles: what each asks for, in one line, and which items of the
//! evidence package (files, report sections) bear on it. It says where the evidence is; it does
//! not say a control is met, which is the auditor's judgement.

/// One row of the mapping table.
#[derive(Clone, Copy, Debug)]
pub struct Control {
    /// The control or article, e.g. `ISO/IEC 42001 A.6.2.8`.
    pub id: &'static str,
    /// Its title.
    pub title: &'static str,
    /// What it asks for, in one line (paraphrased).
    pub asks: &'static str,
    /// The evidence items of the package and report.
    pub evidence: &'static [&'static str],
}

/// The mapping table, in report order.
pub const CONTROLS: &[Control] = &[
    Control {
        id: "ISO/IEC 42001 A.6.2.4",
        title: "AI system verification and validation",
        asks: "Define and document verification and validation measures for the AI system and the criteria for using them.",
        evidence: &[
            "policies/<hex>.json: the policy texts the decisions were checked against",
            "policy statements in the period: the checker's analysis findings at registration",
            "summary.json and the Verification section: every signature, inclusion and commitment checked",
            "verdict-policy replay: every decision decided again under its policy version (0 differences expected)",
        ],
    },
    Control {
        id: "ISO/IEC 42001 A.6.2.8",
        title: "AI system recording of event logs",
        asks: "Determine the life-cycle phases in which event logs are recorded, at minimum while the AI system is in use.",
        evidence: &[
            "tile/entries/*: a signed receipt for every checked or screened action, in log order",
            "checkpoint (and start-checkpoint, consistency): the log is append-only over the period",
            "records.jsonl: the action, agent and request id behind every receipt",
            "Decisions per day",
        ],
    },
    Control {
        id: "ISO/IEC 42001 A.7",
        title: "Data for AI systems (A.7.5 data provenance)",
        asks: "Record the provenance and preparation of the data the AI system uses, and manage its quality.",
        evidence: &[
            "records.jsonl: each canonical action with its salt, opening the receipt's action commitment",
            "tile/entries/*: matched variables per decision: which action data the policy saw",
            "token values are never stored (kept as their presence): data minimisation of secrets",
        ],
    },
    Control {
        id: "ISO/IEC 42001 A.9.2",
        title: "Processes for responsible use of AI systems",
        asks: "Define and document the processes for the responsible use of AI systems.",
        evidence: &[
            "policies/<hex>.json and the Policy versions timeline: the documented rules, with their history",
            "tile/entries/*: every consequential action checked outside the agent, before execution",
            "Screening proportionality: which actions fell under the control and which did not",
            "Escalations: human approvals, with signatures, and their resolution times",
        ],
    },
    Control {
        id: "ISO/IEC 42001 A.9.3",
        title: "Objectives for responsible use of AI system",
        asks: "Identify and document objectives that guide the responsible use of AI systems.",
        evidence: &[
            "policies/<hex>.json: the objectives as enforced rules",
            "Rules: deny and escalate rates per rule, most violated rules",
            "Drift against the previous period",
        ],
    },
    Control {
        id: "ISO/IEC 42001 A.10",
        title: "Third-party and customer relationships",
        asks: "Allocate responsibilities between the organisation, its suppliers and its customers, and meet customer expectations.",
        evidence: &[
            "receipts and proof bundles any customer verifies with `verdict verify`, without the policy",
            "checkpoint witness cosignatures: no party was shown a different history",
            "records.jsonl: the agent that asked, the approvers who decided (signed approvals)",
        ],
    },
    Control {
        id: "EU AI Act Art. 12",
        title: "Record-keeping",
        asks: "High-risk AI systems shall technically allow the automatic recording of events (logs) over their lifetime.",
        evidence: &[
            "tile/entries/*: receipts logged automatically by the server for every decision",
            "checkpoint, consistency: tamper evidence of the log",
            "Period and checkpoint",
        ],
    },
    Control {
        id: "EU AI Act Art. 19",
        title: "Automatically generated logs",
        asks: "Providers keep the automatically generated logs under their control for a period appropriate to the purpose, at least six months.",
        evidence: &[
            "Period and checkpoint: the indices and times covered",
            "start-checkpoint, consistency: nothing before the period was removed or rewritten",
            "manifest.json: every file with its SHA-256, for retention of the package itself",
        ],
    },
    Control {
        id: "EU AI Act Art. 26",
        title: "Obligations of deployers of high-risk AI systems",
        asks: "Deployers use the system per its instructions, assign human oversight, monitor its operation and keep its logs at least six months.",
        evidence: &[
            "Escalations: human oversight, with signed approvals and resolution times",
            "Decisions per day, Rules: monitoring of operation",
            "records.jsonl: approvals and rejections with their signatures (spec approval.md)",
            "the package itself: logs kept by the deployer",
        ],
    },
];
