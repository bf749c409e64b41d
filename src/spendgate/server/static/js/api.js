// The admin API, called with the signed-in key (sessionStorage). Errors carry the API's JSON error body.
const KEY = "spendgate.key";
const BASE = "/api/v1";

export class ApiError extends Error {
  constructor(status, type, message, field) {
    super(message);
    this.status = status;
    this.type = type;
    this.field = field;
  }
}

export const savedKey = () => sessionStorage.getItem(KEY);
export const saveKey = (key) => sessionStorage.setItem(KEY, key);
export const forgetKey = () => sessionStorage.removeItem(KEY);

export function url(path, params = {}) {
  const target = new URL(BASE + path, location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") target.searchParams.set(name, value);
  }
  return target;
}

async function failure(response) {
  let type = "http_error";
  let message = `${response.status} ${response.statusText}`;
  let field;
  try {
    const body = await response.json();
    if (body && body.error) ({ type, message, field } = body.error);
  } catch {
    // not JSON: keep the status line
  }
  if (response.status === 401) window.dispatchEvent(new CustomEvent("spendgate:unauthorized", { detail: message }));
  return new ApiError(response.status, type, message, field);
}

async function call(method, path, params, { signal, key } = {}) {
  const token = key ?? savedKey();
  const response = await fetch(url(path, params), {
    method,
    headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
    cache: "no-store",
    signal,
  });
  if (!response.ok) throw await failure(response);
  return response;
}

export async function get(path, params = {}, options = {}) {
  return (await call("GET", path, params, options)).json();
}

export async function post(path, params = {}, options = {}) {
  return (await call("POST", path, params, options)).json();
}

/** Download an export (CSV or JSON) through the API with the key, then hand it to the browser as a file. */
export async function download(path, params, fileName) {
  const response = await call("GET", path, params);
  const blob = await response.blob();
  const disposition = response.headers.get("Content-Disposition") || "";
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = fileName || /filename="([^"]+)"/.exec(disposition)?.[1] || "spendgate-export";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  return blob.size;
}
