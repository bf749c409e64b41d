// Display formats. Money stays the exact decimal string the API sends: grouped, never rounded.
const INT = new Intl.NumberFormat("en-US");

export const int = (n) => (n === null || n === undefined ? "—" : INT.format(n));

export function money(value, currency = "USD") {
  if (value === null || value === undefined) return "—";
  const text = String(value);
  const negative = text.startsWith("-");
  const [whole, fraction] = text.replace(/^[-+]/, "").split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${negative ? "-" : ""}${currency} ${grouped}${fraction === undefined ? "" : "." + fraction}`;
}

/** A number for a chart axis (the only place money becomes a float). */
export const plot = (value) => (value === null || value === undefined ? null : Number(value));

export function percent(fraction, digits = 1) {
  if (fraction === null || fraction === undefined) return "—";
  return `${(Number(fraction) * 100).toFixed(digits)} %`;
}

export const ms = (value) => (value === null || value === undefined ? "—" : `${INT.format(Math.round(value))} ms`);

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

export function bucketLabel(date, granularity) {
  const iso = date.toISOString();
  return granularity === "hour" ? `${iso.slice(5, 10)} ${iso.slice(11, 13)}h` : iso.slice(0, 10);
}

// Exact decimal arithmetic on the API's strings (BigInt with a common scale).
function scaled(text) {
  const value = String(text ?? "0");
  const negative = value.startsWith("-");
  const [whole, fraction = ""] = value.replace(/^[-+]/, "").split(".");
  const digits = BigInt(whole + fraction || "0");
  return { n: negative ? -digits : digits, scale: fraction.length };
}

function align(a, b) {
  const scale = Math.max(a.scale, b.scale);
  return [a.n * 10n ** BigInt(scale - a.scale), b.n * 10n ** BigInt(scale - b.scale), scale];
}

export function compareDecimal(a, b) {
  const [x, y] = align(scaled(a), scaled(b));
  return x < y ? -1 : x > y ? 1 : 0;
}

export function addDecimal(a, b) {
  const [x, y, scale] = align(scaled(a), scaled(b));
  const sum = x + y;
  const negative = sum < 0n;
  const digits = (negative ? -sum : sum).toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const fraction = scale ? "." + digits.slice(digits.length - scale) : "";
  return `${negative ? "-" : ""}${whole}${fraction}`.replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}
