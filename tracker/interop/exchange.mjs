// Two unmodified bittorrent-tracker clients (WebRTC from node-datachannel) announce one
// info_hash to the tracker at argv[2], get connected through its offer/answer relay, and send
// each other a message over the data channel. Prints one JSON line; exits 0 only on success.
import crypto from 'node:crypto'
import Client from 'bittorrent-tracker'
import * as wrtc from 'node-datachannel/polyfill'

const url = process.argv[2]
const limitMs = Number(process.argv[3] || 30000)
if (!url) {
  console.error('usage: node exchange.mjs ws://HOST:PORT/PATH [timeout_ms]')
  process.exit(2)
}
const infoHash = crypto.randomBytes(20).toString('hex')
const clients = []
const got = {}

function finish (ok, why) {
  console.log(JSON.stringify({ ok, why, got }))
  for (const c of clients) c.destroy()
  // node-datachannel keeps native threads alive; leave without waiting for them.
  setTimeout(() => process.exit(ok ? 0 : 1), 100)
}
const timer = setTimeout(() => finish(false, `timed out after ${limitMs} ms`), limitMs)

function start (name, onUpdate) {
  const client = new Client({ infoHash, peerId: crypto.randomBytes(20), announce: [url], port: 6881, wrtc })
  clients.push(client)
  client.on('error', e => finish(false, `${name} error: ${e.message}`))
  client.on('warning', e => console.error(`${name} warning: ${e.message}`))
  client.once('update', data => onUpdate && onUpdate(data))
  client.on('peer', peer => {
    peer.on('data', d => {
      got[name] = Buffer.from(d).toString()
      if (got.a && got.b) {
        clearTimeout(timer)
        finish(got.a === 'hello from b' && got.b === 'hello from a', 'exchanged')
      }
    })
    const hello = () => peer.send(`hello from ${name}`)
    if (peer.connected) hello()
    else peer.once('connect', hello)
  })
  client.start()
  return client
}

// b announces (with offers) only after a is in the swarm, so b's offers reach a.
start('a', () => start('b'))
