//! Configuration of the optional ABR ladder: the rungs, their presets, the ffmpeg start-up
//! check and the ffmpeg command line. The runtime lives in `transcoder`.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use tokio::process::Command;

use crate::error::{Error, Result};

/// One rendition of the ABR ladder, encoded by ffmpeg from the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rung {
    /// Rendition name in events and playlists, e.g. `720p` (1-32 of `[A-Za-z0-9_-]`; not
    /// `source` or `master`).
    pub name: String,
    /// Output height in pixels (even); the width follows the source's aspect ratio.
    pub height: u32,
    /// H.264 bit rate in kb/s (also the VBV max rate, with a two-second buffer).
    pub video_kbps: u32,
    /// AAC bit rate in kb/s.
    pub audio_kbps: u32,
}

/// Built-in rungs: name, height, video kb/s, audio kb/s.
const PRESETS: [(&str, u32, u32, u32); 6] = [
    ("1080p", 1080, 5000, 128),
    ("720p", 720, 2800, 128),
    ("480p", 480, 1400, 96),
    ("360p", 360, 800, 96),
    ("240p", 240, 400, 64),
    ("144p", 144, 200, 48),
];

/// At most this many rungs (the signed manifest holds 16 renditions including the source).
pub(crate) const MAX_RUNGS: usize = 8;

impl Rung {
    /// A built-in rung by name: `1080p`, `720p`, `480p`, `360p`, `240p` or `144p`.
    pub fn preset(name: &str) -> Option<Rung> {
        PRESETS
            .iter()
            .find(|p| p.0.eq_ignore_ascii_case(name.trim()))
            .map(|&(name, height, video_kbps, audio_kbps)| Rung {
                name: name.to_owned(),
                height,
                video_kbps,
                audio_kbps,
            })
    }
}

impl FromStr for Rung {
    type Err = Error;

    /// Parses a preset name (see [`Rung::preset`]).
    fn from_str(s: &str) -> Result<Self> {
        Rung::preset(s).ok_or_else(|| {
            let names: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
            Error::Config(format!("unknown ladder rung {s:?}; presets: {}", names.join(", ")))
        })
    }
}

/// Parses a comma-separated list of preset names, e.g. `720p,480p,360p`. Empty means no ladder.
pub fn parse_ladder(list: &str) -> Result<Vec<Rung>> {
    let rungs = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect::<Result<Vec<Rung>>>()?;
    validate(&rungs)?;
    Ok(rungs)
}

pub(crate) fn validate(rungs: &[Rung]) -> Result<()> {
    if rungs.len() > MAX_RUNGS {
        return Err(Error::Config(format!("at most {MAX_RUNGS} ladder rungs")));
    }
    for (i, r) in rungs.iter().enumerate() {
        let name_ok = (1..=32).contains(&r.name.len())
            && r.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && r.name != "source"
            && r.name != crate::AUDIO_RENDITION
            && r.name != "master";
        if !name_ok {
            return Err(Error::Config(format!(
                "ladder rung name {:?} must be 1-32 of [A-Za-z0-9_-], not source, audio or master",
                r.name
            )));
        }
        if r.height < 16 || r.height > 4320 || r.height % 2 != 0 {
            return Err(Error::Config(format!(
                "ladder rung {}: height {} must be even and 16..=4320",
                r.name, r.height
            )));
        }
        if r.video_kbps == 0 || r.audio_kbps == 0 || r.video_kbps > 100_000 || r.audio_kbps > 512 {
            return Err(Error::Config(format!("ladder rung {}: bit rates out of range", r.name)));
        }
        if rungs[..i].iter().any(|o| o.name == r.name) {
            return Err(Error::Config(format!("ladder rung {} listed twice", r.name)));
        }
    }
    Ok(())
}

/// Checks a ladder before start-up: the rungs are valid and, unless the ladder is empty,
/// `ffmpeg` has what it needs (see [`check_ffmpeg`]). [`crate::serve`] runs the same check.
pub async fn check_ladder(ladder: &[Rung], ffmpeg: &Path) -> Result<()> {
    validate(ladder)?;
    if !ladder.is_empty() {
        check_ffmpeg(ffmpeg).await?;
    }
    Ok(())
}

/// Time allowed for each `ffmpeg -encoders`/`-protocols` query at start-up.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks that `ffmpeg` runs and has what the ladder needs: the libx264 and aac encoders and
/// the `unix` protocol (rungs come back over Unix sockets). Call it at start-up when a ladder
/// is configured; [`crate::serve`] calls it too.
pub async fn check_ffmpeg(ffmpeg: &Path) -> Result<()> {
    let encoders = query(ffmpeg, "-encoders").await?;
    for (needed, what) in [("libx264", "the libx264 encoder"), ("aac", "the aac encoder")] {
        if !encoders.lines().any(|l| l.split_whitespace().nth(1) == Some(needed)) {
            return Err(Error::Ffmpeg(format!(
                "{} lacks {what}, which the ABR ladder needs",
                ffmpeg.display()
            )));
        }
    }
    let protocols = query(ffmpeg, "-protocols").await?;
    let output = protocols.split("Output:").nth(1).unwrap_or("");
    if !output.split_whitespace().any(|p| p == "unix") {
        return Err(Error::Ffmpeg(format!(
            "{} lacks the unix protocol for output, which the ABR ladder needs",
            ffmpeg.display()
        )));
    }
    Ok(())
}

async fn query(ffmpeg: &Path, what: &str) -> Result<String> {
    let child = Command::new(ffmpeg)
        .args(["-hide_banner", what])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            Error::Ffmpeg(format!(
                "cannot run {} ({e}): the ABR ladder needs ffmpeg with libx264 and aac \
                 (Debian: apt-get install ffmpeg); install it or configure no ladder",
                ffmpeg.display()
            ))
        })?;
    let out = tokio::time::timeout(CHECK_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| Error::Ffmpeg(format!("{} {what} did not answer in time", ffmpeg.display())))??;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Ffmpeg(format!(
            "{} {what} failed ({}): {}",
            ffmpeg.display(),
            out.status,
            err.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Path of a rung's socket inside the session's private directory.
pub(crate) fn socket_path(dir: &Path, rung: &Rung) -> std::path::PathBuf {
    dir.join(format!("{}.sock", rung.name))
}

/// The ffmpeg command line: FLV on stdin, one FLV output per rung to its Unix socket.
///
/// Timestamps are kept (`-copyts`, `-fps_mode passthrough`) so rung and source share one
/// timeline; keyframes are forced exactly where the source has them (`-force_key_frames
/// source`, no scene-cut or periodic keyframes of x264's own), so the segmenter cuts every
/// rung at the same instants as the source and players can switch at any segment boundary.
pub(crate) fn ffmpeg_args(rungs: &[Rung], audio: bool, dir: &Path) -> Vec<OsString> {
    fn push(a: &mut Vec<OsString>, items: &[&str]) {
        a.extend(items.iter().map(OsString::from));
    }
    let mut a: Vec<OsString> = Vec::new();
    push(&mut a, &["-hide_banner", "-nostats", "-loglevel", "warning"]);
    push(
        &mut a,
        &["-analyzeduration", "1000000", "-f", "flv", "-i", "pipe:0", "-copyts"],
    );
    for r in rungs {
        push(&mut a, &["-map", "0:v:0"]);
        if audio {
            push(&mut a, &["-map", "0:a:0"]);
        }
        let scale = format!("scale=-2:{}", r.height);
        let rate = format!("{}k", r.video_kbps);
        let buf = format!("{}k", r.video_kbps.saturating_mul(2));
        push(
            &mut a,
            &[
                "-vf", &scale, "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast",
            ],
        );
        push(&mut a, &["-b:v", &rate, "-maxrate", &rate, "-bufsize", &buf]);
        push(
            &mut a,
            &["-force_key_frames", "source", "-sc_threshold", "0", "-g", "100000"],
        );
        push(&mut a, &["-fps_mode", "passthrough"]);
        if audio {
            push(&mut a, &["-c:a", "aac", "-b:a", &format!("{}k", r.audio_kbps)]);
        }
        push(
            &mut a,
            &["-flush_packets", "1", "-f", "flv", "-flvflags", "no_duration_filesize"],
        );
        let mut url = OsString::from("unix:");
        url.push(socket_path(dir, r));
        a.push(url);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_lists() {
        let l = parse_ladder("720p, 480P,,360p").unwrap();
        assert_eq!(
            l.iter().map(|r| (r.name.as_str(), r.height)).collect::<Vec<_>>(),
            [("720p", 720), ("480p", 480), ("360p", 360)]
        );
        assert!(parse_ladder("").unwrap().is_empty());
        let err = parse_ladder("720p,999p").unwrap_err().to_string();
        assert!(err.contains("999p") && err.contains("1080p"), "{err}");
        assert!(parse_ladder("720p,720p").is_err());
    }

    #[test]
    fn validation() {
        let ok = Rung {
            name: "540p_hi".into(),
            height: 540,
            video_kbps: 2000,
            audio_kbps: 128,
        };
        assert!(validate(std::slice::from_ref(&ok)).is_ok());
        for bad in [
            Rung {
                name: "source".into(),
                ..ok.clone()
            },
            Rung {
                name: "a/b".into(),
                ..ok.clone()
            },
            Rung {
                name: String::new(),
                ..ok.clone()
            },
            Rung {
                height: 541,
                ..ok.clone()
            },
            Rung {
                height: 0,
                ..ok.clone()
            },
            Rung {
                video_kbps: 0,
                ..ok.clone()
            },
        ] {
            assert!(validate(std::slice::from_ref(&bad)).is_err(), "{bad:?}");
        }
        let many: Vec<Rung> = (0..=MAX_RUNGS)
            .map(|i| Rung {
                name: format!("r{i}"),
                ..ok.clone()
            })
            .collect();
        assert!(validate(&many).is_err());
    }

    #[test]
    fn command_line_per_rung() {
        let rungs = parse_ladder("480p,240p").unwrap();
        let args: Vec<String> = ffmpeg_args(&rungs, true, Path::new("/run/x"))
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let joined = args.join(" ");
        assert!(joined.contains("-f flv -i pipe:0 -copyts"), "{joined}");
        assert!(joined.contains("scale=-2:480") && joined.contains("scale=-2:240"));
        assert_eq!(args.iter().filter(|a| *a == "source").count(), 2);
        assert_eq!(args.iter().filter(|a| *a == "0:a:0").count(), 2);
        assert!(args.contains(&"unix:/run/x/480p.sock".to_owned()));
        assert_eq!(args.last().map(String::as_str), Some("unix:/run/x/240p.sock"));
        let video_only = ffmpeg_args(&rungs, false, Path::new("/run/x"));
        assert!(!video_only.iter().any(|a| a == "0:a:0" || a == "aac"));
    }

    #[tokio::test]
    async fn missing_ffmpeg_is_a_clear_error() {
        let err = check_ffmpeg(Path::new("/nonexistent/ffmpeg"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/ffmpeg") && err.contains("ladder"), "{err}");
    }
}
