//! The pictures: the dashboards' weekly trends and the cache's hit rates, drawn as
//! inline SVG with their numbers as a table, and redrawn when the figures change.

use actix_web::http::StatusCode;
use actix_web::test;
use napiatke_db::testing::FIXTURE_PASSWORD;
use napiatke_db::Engine;

use crate::common::*;

napiatke_db::both_engines! {
    #[actix_web::test] async
    dashboards_draw_their_trends_and_redraw_them_after_a_mark => trends;
    cache_stats_draw_hit_rates_per_namespace => hit_rates;
}

/// The table row of a chart's numbers for `label`.
fn number<'a>(body: &'a str, chart: &str, label: &str) -> &'a str {
    let from = body
        .find(&format!("<figure class=\"chart-figure\" id=\"{chart}\">"))
        .unwrap_or_else(|| panic!("no chart {chart} in {body}"));
    let figure = &body[from..];
    let figure = &figure[..figure.find("</figure>").unwrap_or(figure.len())];
    let row = format!("<th scope=\"row\">{label}</th><td>");
    let at = figure
        .find(&row)
        .unwrap_or_else(|| panic!("no {label} in {figure}"));
    let rest = &figure[at + row.len()..];
    &rest[..rest.find("</td>").unwrap_or(0)]
}

async fn trends(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;

    let dash = send(&app, admin.get("/dashboard/")).await;
    assert_eq!(dash.status, StatusCode::OK);
    // Two charts of twelve weeks each (7 September to this week, of 23 November),
    // each an image labelled by its title and description.
    assert_eq!(dash.body.matches("<svg class=\"chart\"").count(), 2);
    assert_eq!(dash.body.matches("<rect class=\"bar\"").count(), 24);
    assert!(dash
        .body
        .contains("role=\"img\" aria-labelledby=\"trend-attendance-title trend-attendance-desc\""));
    assert!(dash
        .body
        .contains("<title id=\"trend-revenue-title\">Paid revenue by week</title>"));
    assert_eq!(number(&dash.body, "trend-attendance", "7 Sep"), "no marks");
    assert_eq!(
        number(&dash.body, "trend-attendance", "16 Nov"),
        "50.0% (1 of 2 present)"
    );
    assert_eq!(
        number(&dash.body, "trend-attendance", "23 Nov"),
        "0.0% (0 of 1 present)"
    );
    assert_eq!(number(&dash.body, "trend-revenue", "26 Oct"), "100.00 PLN");
    assert_eq!(number(&dash.body, "trend-revenue", "2 Nov"), "50.50 PLN");
    assert!(dash
        .body
        .contains("<title>16 Nov: 50.0% (1 of 2 present)</title>"));
    let charts = &dash.body[dash.body.find("<section class=\"charts\"").unwrap()..];
    let charts = &charts[..charts.find("</section>").unwrap()];
    assert!(
        !charts.contains("<script") && !charts.contains("style="),
        "drawn without a script or inline style"
    );

    // Sara's late mark in lesson 2 (this week) becomes present: every trend that
    // draws it is redrawn at once.
    let (_, tina) = login(&app, "tina@napiatke.local", FIXTURE_PASSWORD).await;
    let (_, sara) = login(&app, "sara@napiatke.local", FIXTURE_PASSWORD).await;
    for who in [&tina, &sara] {
        let own = send(&app, who.get("/dashboard/")).await;
        assert_eq!(
            own.body.matches("<svg class=\"chart\"").count(),
            1,
            "attendance only"
        );
        assert_eq!(
            number(&own.body, "trend-attendance", "23 Nov"),
            "0.0% (0 of 1 present)"
        );
        assert!(!own.body.contains("trend-revenue"));
    }
    let res = mark(&app, &admin, 2, "4", "PRESENT").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    for who in [&admin, &tina, &sara] {
        let dash = send(&app, who.get("/dashboard/")).await;
        assert_eq!(
            number(&dash.body, "trend-attendance", "23 Nov"),
            "100.0% (1 of 1 present)"
        );
    }
}

async fn hit_rates(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    // A miss then a hit on the calendar's namespace.
    send(&app, admin.get("/calendar/?start=2026-11-23")).await;
    send(&app, admin.get("/calendar/?start=2026-11-23")).await;
    let page = send(&app, admin.get("/admin/cache-stats/")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.body.matches("<svg class=\"chart\"").count(), 1);
    let calendar = number(&page.body, "cache-hit-rates", "calendar");
    assert!(
        calendar.starts_with("50.0% of 2 lookups"),
        "one miss, then one hit: {calendar}"
    );
    assert!(page
        .body
        .contains("<title id=\"cache-hit-rates-title\">Hit rate per namespace</title>"));
}
