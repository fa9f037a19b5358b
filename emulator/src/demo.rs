//! `--demo`: a steady, realistic synthetic stream for the dashboard: Opportunity and Case changes
//! on the PushTopics `/topic/OpportunityUpdates` and `/topic/CaseUpdates`, an `/event/Order_Placed__e`
//! platform event, and Account Change Data Capture (`/data/AccountChangeEvent` and `/data/ChangeEvents`).

use crate::control::fire_record_change;
use crate::state::App;
use crate::store::{Body, DEFAULT_USER_ID};
use crate::util::record_id;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

const ACCOUNTS: &[&str] = &[
    "Acme Corporation",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
    "Soylent Foods",
    "Cyberdyne Systems",
    "Wonka Confectionery",
    "Tyrell Corp",
    "Vandelay Imports",
];
const STAGES: &[&str] = &[
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
];
const CASE_SUBJECTS: &[&str] = &[
    "Cannot log in to portal",
    "Invoice shows wrong amount",
    "Shipment delayed",
    "Feature request: export to CSV",
    "Printer out of ink",
    "Password reset not received",
    "API rate limit reached",
    "Damaged item on delivery",
];
const CASE_STATUS: &[&str] = &[
    "New",
    "Working",
    "Escalated",
    "Waiting on Customer",
    "Closed",
];
const PRIORITIES: &[&str] = &["Low", "Medium", "High", "Critical"];
const PRODUCTS: &[&str] = &[
    "GenWatt Diesel 200kW",
    "SLA: Gold",
    "Installation: Industrial",
    "Solar Panel X2",
    "Battery Pack 10kWh",
];
const INDUSTRIES: &[&str] = &[
    "Technology",
    "Manufacturing",
    "Healthcare",
    "Retail",
    "Finance",
    "Energy",
];
const RATINGS: &[&str] = &["Hot", "Warm", "Cold"];

fn pick<'a>(rng: &mut impl Rng, xs: &'a [&'a str]) -> &'a str {
    xs.choose(rng).copied().unwrap_or("")
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Runs the demo stream until the task is aborted.
pub async fn run(app: Arc<App>) {
    {
        let mut inner = app.inner();
        inner
            .pushtopics
            .insert("OpportunityUpdates".into(), "Opportunity".into());
        inner.pushtopics.insert("CaseUpdates".into(), "Case".into());
    }
    let opps: Vec<String> = (0..8).map(|_| record_id("006")).collect();
    let cases: Vec<String> = (0..8).map(|_| record_id("500")).collect();
    let accounts: Vec<String> = (0..6).map(|_| record_id("001")).collect();
    let mut tick: u64 = 0;
    let mut order_no: u64 = 10_000;
    loop {
        tokio::time::sleep(Duration::from_millis(app.cfg.demo_interval_ms.max(10))).await;
        tick += 1;
        let mut rng = rand::rngs::OsRng;
        match tick % 4 {
            0 => {
                let amount = rng.gen_range(5..500) * 1000;
                let stage = pick(&mut rng, STAGES);
                let fields = obj(json!({
                    "Name": format!("{} - {}", pick(&mut rng, ACCOUNTS), pick(&mut rng, PRODUCTS)),
                    "StageName": stage,
                    "Amount": amount,
                    "Probability": match stage { "Closed Won" => 100, "Closed Lost" => 0, _ => rng.gen_range(10..90) },
                    "CloseDate": format!("2026-{:02}-{:02}", rng.gen_range(1..13), rng.gen_range(1..29)),
                }));
                let id = opps.choose(&mut rng).cloned();
                let ct = if rng.gen_bool(0.15) {
                    "CREATE"
                } else {
                    "UPDATE"
                };
                fire_record_change(&app, "Opportunity", ct, &fields, id.as_deref());
            }
            1 => {
                let fields = obj(json!({
                    "Subject": pick(&mut rng, CASE_SUBJECTS),
                    "Status": pick(&mut rng, CASE_STATUS),
                    "Priority": pick(&mut rng, PRIORITIES),
                    "Origin": pick(&mut rng, &["Web", "Phone", "Email"]),
                    "CaseNumber": format!("{:08}", rng.gen_range(1000..99999)),
                }));
                let id = cases.choose(&mut rng).cloned();
                let ct = if rng.gen_bool(0.2) {
                    "CREATE"
                } else {
                    "UPDATE"
                };
                fire_record_change(&app, "Case", ct, &fields, id.as_deref());
            }
            2 => {
                order_no += 1;
                let qty = rng.gen_range(1..20);
                let price: f64 = rng.gen_range(20.0..2500.0);
                let fields = json!({
                    "Order_Number__c": format!("ORD-{order_no}"),
                    "Customer__c": pick(&mut rng, ACCOUNTS),
                    "Product__c": pick(&mut rng, PRODUCTS),
                    "Quantity__c": qty,
                    "Total_Amount__c": (price * qty as f64 * 100.0).round() / 100.0,
                    "Currency__c": "USD",
                });
                let body = Body::Platform {
                    fields: fields.to_string(),
                    created_by: DEFAULT_USER_ID.into(),
                };
                let now = app.now_ms();
                let _ = app.inner().publish("/event/Order_Placed__e", &body, 1, now);
            }
            _ => {
                let fields = obj(json!({
                    "Name": pick(&mut rng, ACCOUNTS),
                    "Industry": pick(&mut rng, INDUSTRIES),
                    "Rating": pick(&mut rng, RATINGS),
                    "AnnualRevenue": rng.gen_range(1..900) * 100_000,
                    "NumberOfEmployees": rng.gen_range(10..20_000),
                }));
                let id = accounts.choose(&mut rng).cloned();
                fire_record_change(&app, "Account", "UPDATE", &fields, id.as_deref());
            }
        }
    }
}
