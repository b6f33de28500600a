// One place for every call to the HTTP API: the session cookie goes along by itself (same
// origin); each change carries the session's CSRF token; a 401 sends the user to the login page.
import { router } from './router.js'
import { reactive } from 'vue'

export const session = reactive({ user: null, role: null, name: null, csrf: null, loaded: false })

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

export async function api(method, path, body, { raw = false, contentType } = {}) {
  const headers = {}
  if (method !== 'GET' && method !== 'HEAD' && session.csrf) headers['X-CSRF-Token'] = session.csrf
  let payload
  if (body !== undefined) {
    if (contentType) {
      headers['Content-Type'] = contentType
      payload = body
    } else {
      headers['Content-Type'] = 'application/json'
      payload = JSON.stringify(body)
    }
  }
  const resp = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' })
  if (resp.status === 401 && path !== '/api/v1/session') {
    Object.assign(session, { user: null, role: null, csrf: null, loaded: true })
    router.push({ name: 'login', query: { next: router.currentRoute.value.fullPath } })
    throw new ApiError(401, 'unauthenticated', '登录已过期，请重新登录')
  }
  if (!resp.ok) {
    let code = 'error'
    let message = `请求失败（${resp.status}）`
    try {
      const err = (await resp.json()).error
      code = err.code
      message = err.message
    } catch (_) { /* not JSON */ }
    throw new ApiError(resp.status, code, message)
  }
  if (raw) return resp
  if (resp.status === 204) return null
  return resp.json()
}

export async function loadSession() {
  try {
    const resp = await fetch('/api/v1/session', { credentials: 'same-origin' })
    const me = resp.ok ? await resp.json() : { authenticated: false }
    if (me.authenticated) {
      Object.assign(session, { user: me.user, role: me.role, name: me.name, csrf: me.csrf_token })
    } else {
      Object.assign(session, { user: null, role: null, name: null, csrf: null })
    }
  } finally {
    session.loaded = true
  }
}

export function query(params) {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === '') continue
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x))
    else q.append(k, v)
  }
  const s = q.toString()
  return s ? `?${s}` : ''
}
