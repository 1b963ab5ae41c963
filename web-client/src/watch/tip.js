// Tips to the broadcaster's lightning address (the announce's `tip`, signed by the stream key).
// With a WebLN wallet in the page: resolve LNURL-pay (LUD-16 -> LUD-06), ask the service for an
// invoice of the chosen amount and hand it to webln.sendPayment. Without one: a lightning: link
// and its QR code for a phone wallet.

import qrcode from "qrcode-generator";

// name@host[:port]; strict so the value is safe in a URL and an href.
const ADDRESS_RE = /^([a-z0-9._+-]{1,64})@((?:[a-z0-9-]{1,63}\.)*[a-z0-9-]{1,63})(?::(\d{1,5}))?$/i;

export function parseLightningAddress(s) {
  const m = typeof s === "string" && ADDRESS_RE.exec(s);
  return m ? { name: m[1], host: m[2] + (m[3] ? `:${m[3]}` : ""), address: s } : null;
}

/** Fill `card` (an element with the tip markup) for `tip`; hides it when there is no tip. */
export function setupTip(card, tip) {
  const addr = parseLightningAddress(tip);
  card.hidden = !addr;
  if (!addr || card.dataset.address === addr.address) return;
  card.dataset.address = addr.address;
  const $ = (sel) => card.querySelector(sel);
  $(".tip-address").textContent = addr.address;
  const status = $(".tip-status");
  if (window.webln) {
    $(".tip-webln").hidden = false;
    $(".tip-fallback").hidden = true;
    $(".tip-send").onclick = async () => {
      const sats = Number($(".tip-amount").value);
      status.textContent = "requesting invoice…";
      try {
        await payWithWebln(addr, sats);
        status.textContent = `sent ${sats} sats — thank you!`;
      } catch (e) {
        status.textContent = `tip failed: ${e.message}`;
      }
    };
  } else {
    $(".tip-webln").hidden = true;
    $(".tip-fallback").hidden = false;
    const uri = `lightning:${addr.address}`;
    const link = $(".tip-link");
    link.href = uri;
    link.textContent = uri;
    const qr = qrcode(0, "M");
    qr.addData(uri);
    qr.make();
    $(".tip-qr").src = qr.createDataURL(4, 2);
  }
}

async function payWithWebln(addr, sats) {
  if (!Number.isInteger(sats) || sats < 1) throw new Error("choose a whole number of sats");
  await window.webln.enable();
  const info = await getJson(`https://${addr.host}/.well-known/lnurlp/${encodeURIComponent(addr.name)}`);
  if (info.tag !== "payRequest" || typeof info.callback !== "string") throw new Error("not an LNURL-pay service");
  const msat = sats * 1000;
  if (msat < info.minSendable || msat > info.maxSendable) {
    throw new Error(`amount must be ${Math.ceil(info.minSendable / 1000)}–${Math.floor(info.maxSendable / 1000)} sats`);
  }
  const cb = new URL(info.callback);
  if (cb.protocol !== "https:") throw new Error("LNURL callback is not https");
  cb.searchParams.set("amount", String(msat));
  const inv = await getJson(cb.href);
  if (inv.status === "ERROR") throw new Error(inv.reason || "service refused");
  if (typeof inv.pr !== "string") throw new Error("no invoice in the reply");
  await window.webln.sendPayment(inv.pr);
}

async function getJson(url) {
  const res = await fetch(url, { credentials: "omit", cache: "no-store" });
  if (!res.ok) throw new Error(`HTTP ${res.status} from ${new URL(url).host}`);
  return res.json();
}
