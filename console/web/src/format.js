// Chinese office formats: Beijing time, percentages with one decimal, thousands separators.
const TZ = 'Asia/Shanghai'
const dateTime = new Intl.DateTimeFormat('zh-CN', {
  timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit',
  hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
})
const number = new Intl.NumberFormat('zh-CN')

export function beijing(value) {
  if (!value) return '—'
  const parts = Object.fromEntries(dateTime.formatToParts(new Date(value)).map((p) => [p.type, p.value]))
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`
}

export function today() {
  const parts = Object.fromEntries(dateTime.formatToParts(new Date()).map((p) => [p.type, p.value]))
  return `${parts.year}-${parts.month}-${parts.day}`
}

export function percent(value) {
  return value === null || value === undefined ? '—' : `${(value * 100).toFixed(1)}%`
}

export function num(value) {
  return value === null || value === undefined ? '—' : number.format(value)
}

export const LEVELS = { 1: '非常满意', 2: '满意', 3: '基本满意', 4: '不满意', 5: '非常不满意' }
export const SOURCES = { keypad: '按键评价', callback: '回访', manual: '人工录入', default: '默认好评' }
export const ROLES = {
  admin: '系统管理员', supervisor: '监督员', reviewer: '复核员', agent: '坐席',
  aggregator: '汇聚系统', department: '责任单位', workorder: '工单系统',
}
export const CAMPAIGN_KINDS = {
  case_followup: '差评回访', rating_invite: '电话邀评', satisfaction_followup: '满意度回访',
}
export const CAMPAIGN_STATUS = {
  draft: '草稿', running: '进行中', paused: '已暂停', cancelled: '已取消', finished: '已完成',
}
export const TASK_STATUS = {
  pending: '待拨打', dialing: '拨打中', completed: '已回访', unreachable: '未接通转人工',
  manual_done: '人工已处理', cancelled: '已取消',
}
