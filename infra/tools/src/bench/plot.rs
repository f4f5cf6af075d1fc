//! PNG charts for the report: grouped bars over categories and lines over a numeric
//! axis.
//!
//! Drawn with `plotters` (bitmap backend only, text through `ab_glyph` with an
//! embedded subset of DejaVu Sans, so the output does not depend on the fonts of the
//! machine) into an RGB buffer, written as PNG here (zlib through `miniz_oxide`). The
//! same figures give the same bytes.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::Error;

/// DejaVu Sans reduced to Latin-1 and a few symbols (license in `assets/`).
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-subset.ttf");
const FAMILY: &str = "sans-serif";
const SIZE: (u32, u32) = (960, 540);

/// Series colours (colour-blind friendly: Okabe–Ito).
const COLOURS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
];

/// A named series of values, one per category (bars) or per point (lines).
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Values.
    pub values: Vec<f64>,
}

/// A horizontal reference line.
pub struct Guide {
    /// Where.
    pub y: f64,
    /// Legend text.
    pub name: String,
}

fn font() -> Result<(), Error> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok())
    {
        Ok(())
    } else {
        Err("the embedded plot font could not be loaded".into())
    }
}

fn perr<E: std::fmt::Display>(e: E) -> Error {
    format!("drawing a chart: {e}").into()
}

/// A PNG file: 8-bit RGB, every scanline unfiltered, one zlib-compressed IDAT chunk
/// (flat chart colours compress well without filters).
fn png_bytes(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let stride = width as usize * 3;
    let mut raw = Vec::with_capacity((stride + 1) * height as usize);
    for row in rgb.chunks(stride).take(height as usize) {
        raw.push(0); // filter type None
        raw.extend_from_slice(row);
    }
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // depth 8, RGB, deflate, no filter, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &miniz_oxide::deflate::compress_to_vec_zlib(&raw, 9),
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

fn write_png(path: &Path, rgb: &[u8]) -> Result<(), Error> {
    std::fs::write(path, png_bytes(SIZE.0, SIZE.1, rgb))
        .map_err(|e| format!("writing {}: {e}", path.display()).into())
}

/// The top of the y axis: room above the largest value or guide for the legend.
fn ymax(series: &[Series], guides: &[Guide]) -> f64 {
    let m = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .chain(guides.iter().map(|g| g.y))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    if m > 0.0 {
        m * 1.4
    } else {
        1.0
    }
}

type Root<'b> = DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>;

/// Draws on a white canvas with `draw` and writes it as PNG.
fn render(path: &Path, draw: impl FnOnce(&Root<'_>) -> Result<(), Error>) -> Result<(), Error> {
    font()?;
    let mut buf = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        draw(&root)?;
        root.present().map_err(perr)?;
    }
    write_png(path, &buf)
}

/// A titled chart over `x` and `0..ymax`.
fn chart<'a, 'b>(
    root: &'a Root<'b>,
    title: &str,
    x: std::ops::Range<f64>,
    ymax: f64,
    x_area: u32,
) -> Result<Chart<'a, 'b>, Error> {
    ChartBuilder::on(root)
        .caption(title, (FAMILY, 22))
        .margin(14)
        .x_label_area_size(x_area)
        .y_label_area_size(80)
        .build_cartesian_2d(x, 0f64..ymax)
        .map_err(perr)
}

/// Grouped bars: one group per category, one bar per series.
pub fn bars(
    path: &Path,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[Series],
    guides: &[Guide],
) -> Result<(), Error> {
    let n = categories.len().max(1);
    render(path, |root| {
        let mut chart = chart(
            root,
            title,
            -0.5..(n as f64 - 0.5),
            ymax(series, guides),
            40,
        )?;
        let label = |x: &f64| -> String {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < categories.len() {
                categories[i as usize].clone()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .y_desc(y_label)
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 15))
            .draw()
            .map_err(perr)?;
        let width = 0.8 / series.len().max(1) as f64;
        for (k, s) in series.iter().enumerate() {
            let colour = COLOURS[k % COLOURS.len()];
            chart
                .draw_series(s.values.iter().enumerate().map(|(i, &v)| {
                    let x0 = i as f64 - 0.4 + k as f64 * width;
                    Rectangle::new(
                        [(x0, 0.0), (x0 + width * 0.92, v.max(0.0))],
                        colour.filled(),
                    )
                }))
                .map_err(perr)?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled())
                });
        }
        draw_guides(&mut chart, guides, (-0.5, n as f64 - 0.5))?;
        legend(&mut chart)
    })
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn draw_guides(chart: &mut Chart<'_, '_>, guides: &[Guide], x: (f64, f64)) -> Result<(), Error> {
    for (k, g) in guides.iter().enumerate() {
        let style = ShapeStyle::from(&if k == 0 { RED } else { BLACK }).stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x.0, g.y), (x.1, g.y)],
                10,
                6,
                style,
            ))
            .map_err(perr)?
            .label(g.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], style));
    }
    Ok(())
}

fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) -> Result<(), Error> {
    chart
        .configure_series_labels()
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(perr)
}

/// Lines over a numeric x axis: every series has one value per `xs` entry.
pub fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    xs: &[f64],
    series: &[Series],
    guides: &[Guide],
) -> Result<(), Error> {
    let xmax = xs.iter().copied().fold(0.0f64, f64::max) * 1.08 + 1e-9;
    render(path, |root| {
        let mut chart = chart(root, title, 0.0..xmax, ymax(series, guides), 50)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 15))
            .draw()
            .map_err(perr)?;
        for (k, s) in series.iter().enumerate() {
            let colour = COLOURS[k % COLOURS.len()];
            let pts: Vec<(f64, f64)> = xs.iter().copied().zip(s.values.iter().copied()).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(3)))
                .map_err(perr)?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], colour.stroke_width(3))
                });
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 5, colour.filled())))
                .map_err(perr)?;
        }
        draw_guides(&mut chart, guides, (0.0, xmax))?;
        legend(&mut chart)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_files_have_the_standard_layout() {
        // 2 × 1 pixels: red, blue.
        let png = png_bytes(2, 1, &[255, 0, 0, 0, 0, 255]);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(&png[16..24], &[0, 0, 0, 2, 0, 0, 0, 1]);
        // IHDR's CRC covers its type and data.
        assert_eq!(
            u32::from_be_bytes(png[29..33].try_into().expect("crc")),
            crc32fast::hash(&png[12..29])
        );
        assert_eq!(&png[37..41], b"IDAT");
        let len = u32::from_be_bytes(png[33..37].try_into().expect("len")) as usize;
        let raw = miniz_oxide::inflate::decompress_to_vec_zlib(&png[41..41 + len]).expect("zlib");
        assert_eq!(raw, vec![0, 255, 0, 0, 0, 0, 255]);
        assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
    }

    #[test]
    fn charts_render_to_png_files() {
        let dir = tempfile_dir();
        let path = dir.join("bars.png");
        bars(
            &path,
            "Title",
            "y → ≤ µs",
            &["a b".into(), "c".into()],
            &[
                Series {
                    name: "one".into(),
                    values: vec![1.0, 2.0],
                },
                Series {
                    name: "two".into(),
                    values: vec![0.5, f64::NAN],
                },
            ],
            &[Guide {
                y: 0.9,
                name: "goal".into(),
            }],
        )
        .expect("bars");
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(&bytes[..4], b"\x89PNG");
        let path = dir.join("lines.png");
        lines(
            &path,
            "Title",
            "x",
            "y",
            &[1.0, 4.0, 16.0],
            &[Series {
                name: "s".into(),
                values: vec![3.0, 5.0, 4.0],
            }],
            &[],
        )
        .expect("lines");
        assert!(std::fs::metadata(&path).expect("lines file").len() > 1000);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("dbmazz-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }
}
