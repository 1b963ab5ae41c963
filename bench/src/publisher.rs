//! A minimal RTMP publisher on rml_rtmp's client session: handshake, connect, publish, then
//! tags as they come. A reader thread hands the server's bytes back so acknowledgements and
//! pings are answered without ever blocking the paced sender.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;

type Res<T> = Result<T, String>;

pub struct Publisher {
    stream: TcpStream,
    session: ClientSession,
    incoming: mpsc::Receiver<Vec<u8>>,
}

impl Publisher {
    /// Connects to `rtmp://HOST:PORT/APP/KEY` and starts publishing.
    pub fn connect(url: &str) -> Res<Self> {
        let rest = url.strip_prefix("rtmp://").ok_or("URL must start with rtmp://")?;
        let (addr, path) = rest.split_once('/').ok_or("URL has no app")?;
        let (app, key) = path.split_once('/').ok_or("URL has no stream key")?;
        let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;

        let mut hs = Handshake::new(PeerType::Client);
        let p0p1 = hs.generate_outbound_p0_and_p1().map_err(|e| format!("{e:?}"))?;
        stream.write_all(&p0p1).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 64 * 1024];
        let remaining = loop {
            let n = stream.read(&mut buf).map_err(|e| format!("handshake: {e}"))?;
            if n == 0 {
                return Err("closed during handshake".into());
            }
            match hs.process_bytes(&buf[..n]).map_err(|e| format!("{e:?}"))? {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    stream.write_all(&response_bytes).map_err(|e| e.to_string())?
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    stream.write_all(&response_bytes).map_err(|e| e.to_string())?;
                    break remaining_bytes;
                }
            }
        };

        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(format!("rtmp://{addr}/{app}"));
        let (session, initial) = ClientSession::new(config).map_err(|e| e.to_string())?;
        let (tx, incoming) = mpsc::channel();
        let mut p = Publisher {
            stream,
            session,
            incoming,
        };
        p.send_all(initial)?;
        let r = p
            .session
            .request_connection(app.to_owned())
            .map_err(|e| e.to_string())?;
        p.send_all(vec![r])?;
        let mut pending = remaining;
        let mut publishing = false;
        while !publishing {
            if pending.is_empty() {
                let n = p
                    .stream
                    .read(&mut buf)
                    .map_err(|e| format!("waiting for publish: {e}"))?;
                if n == 0 {
                    return Err("server closed before publish started".into());
                }
                pending = buf[..n].to_vec();
            }
            let results = p.session.handle_input(&pending).map_err(|e| e.to_string())?;
            pending.clear();
            for r in results {
                match r {
                    ClientSessionResult::RaisedEvent(ClientSessionEvent::ConnectionRequestAccepted) => {
                        let r = p
                            .session
                            .request_publishing(key.to_owned(), PublishRequestType::Live)
                            .map_err(|e| e.to_string())?;
                        p.send_all(vec![r])?;
                    }
                    ClientSessionResult::RaisedEvent(ClientSessionEvent::PublishRequestAccepted) => publishing = true,
                    ClientSessionResult::RaisedEvent(ClientSessionEvent::ConnectionRequestRejected { description }) => {
                        return Err(format!("connect rejected: {description}"));
                    }
                    other => p.send_all(vec![other])?,
                }
            }
        }
        let mut reader = p.stream.try_clone().map_err(|e| e.to_string())?;
        reader.set_read_timeout(None).map_err(|e| e.to_string())?;
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Ok(p)
    }

    fn send_all(&mut self, results: Vec<ClientSessionResult>) -> Res<()> {
        for r in results {
            if let ClientSessionResult::OutboundResponse(packet) = r {
                self.stream
                    .write_all(&packet.bytes)
                    .map_err(|e| format!("write: {e}"))?;
            }
        }
        Ok(())
    }

    /// Answers whatever the server sent since the last call.
    pub fn poll(&mut self) -> Res<()> {
        while let Ok(bytes) = self.incoming.try_recv() {
            let results = self.session.handle_input(&bytes).map_err(|e| e.to_string())?;
            self.send_all(results)?;
        }
        Ok(())
    }

    pub fn metadata(&mut self, width: u32, height: u32, fps: f32) -> Res<()> {
        let mut m = StreamMetadata::new();
        m.video_width = Some(width);
        m.video_height = Some(height);
        m.video_frame_rate = Some(fps);
        m.video_codec_id = Some(7);
        m.audio_codec_id = Some(10);
        let r = self.session.publish_metadata(&m).map_err(|e| e.to_string())?;
        self.send_all(vec![r])
    }

    /// Sends one FLV tag body; returns once the kernel has all of it.
    pub fn tag(&mut self, kind: u8, ts: u32, body: &Bytes) -> Res<()> {
        let t = RtmpTimestamp::new(ts);
        let r = match kind {
            8 => self.session.publish_audio_data(body.clone(), t, false),
            9 => self.session.publish_video_data(body.clone(), t, false),
            _ => return Ok(()),
        }
        .map_err(|e| e.to_string())?;
        self.send_all(vec![r])
    }
}
