//! The timeline plot (SVG).

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use super::sampler::Sample;

/// Arrivals, held and in-flight requests (top) and instances by state (bottom).
pub fn plot(title: &str, tl: &[Sample], path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1200, 700)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| anyhow!("plot {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (top, bottom) = root.split_vertically(380);
    let t_max = tl.last().map_or(1.0, |s| s.t_s).max(1.0);
    let y_top = tl
        .iter()
        .map(|s| s.arrivals_per_s.max(s.held as f64).max(s.in_flight as f64))
        .fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&top)
        .caption(
            format!("{title}: arrivals/s, held and in flight"),
            ("sans-serif", 18),
        )
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..t_max, 0f64..y_top * 1.1)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| fail(&e))?;
    type Line = (&'static str, RGBColor, fn(&Sample) -> f64);
    let lines: [Line; 3] = [
        ("arrivals/s", RGBColor(120, 120, 120), |s| s.arrivals_per_s),
        ("held", RGBColor(220, 80, 60), |s| s.held as f64),
        ("in flight", RGBColor(60, 110, 200), |s| s.in_flight as f64),
    ];
    for (name, color, f) in lines {
        chart
            .draw_series(LineSeries::new(
                tl.iter().map(|s| (s.t_s, f(s))),
                color.stroke_width(2),
            ))
            .map_err(|e| fail(&e))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;

    let y_bottom = tl
        .iter()
        .map(|s| s.ready + s.booting + s.draining)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut chart = ChartBuilder::on(&bottom)
        .caption(
            "instances: ready (blue), booting (orange), draining (grey), stacked",
            ("sans-serif", 16),
        )
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..t_max, 0u32..y_bottom + 1)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| fail(&e))?;
    type Layer = (RGBColor, fn(&Sample) -> u32);
    let layers: [Layer; 3] = [
        (RGBColor(170, 170, 170), |s| {
            s.ready + s.booting + s.draining
        }),
        (RGBColor(240, 160, 60), |s| s.ready + s.booting),
        (RGBColor(70, 120, 200), |s| s.ready),
    ];
    for (color, f) in layers {
        chart
            .draw_series(AreaSeries::new(
                tl.iter().map(|s| (s.t_s, f(s))),
                0,
                color.mix(0.7),
            ))
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
