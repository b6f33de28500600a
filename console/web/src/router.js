import { createRouter, createWebHistory } from 'vue-router'
import { session, loadSession } from './api.js'

// Which roles see a page in the menu. The server checks every call by itself; this only
// keeps people from landing on pages whose calls would be refused.
export const PAGES = [
  { path: '/', name: 'dashboard', title: '工作台', roles: ['supervisor', 'reviewer', 'agent', 'department'], component: () => import('./views/Dashboard.vue') },
  { path: '/ratings', name: 'ratings', title: '评价查询', roles: ['supervisor', 'reviewer', 'agent', 'department'], component: () => import('./views/Ratings.vue') },
  { path: '/campaigns', name: 'campaigns', title: '回访任务', roles: ['supervisor'], component: () => import('./views/Campaigns.vue') },
  { path: '/manual', name: 'manual', title: '人工回访', roles: ['supervisor'], component: () => import('./views/Manual.vue') },
  { path: '/delivery', name: 'delivery', title: '数据推送', roles: ['supervisor'], component: () => import('./views/Delivery.vue') },
  { path: '/admin/users', name: 'users', title: '用户管理', roles: ['admin'], component: () => import('./views/AdminUsers.vue') },
  { path: '/admin/tokens', name: 'tokens', title: '接口令牌', roles: ['admin'], component: () => import('./views/AdminTokens.vue') },
  { path: '/admin/audit', name: 'audit', title: '审计日志', roles: ['supervisor', 'reviewer'], component: () => import('./views/AdminAudit.vue') },
  { path: '/admin/settings', name: 'settings', title: '系统设置', roles: ['admin'], component: () => import('./views/AdminSettings.vue') },
]

export function allowed(page, role) {
  return role === 'admin' || page.roles.includes(role)
}

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/login', name: 'login', component: () => import('./views/Login.vue'), meta: { public: true } },
    ...PAGES.map((p) => ({ path: p.path, name: p.name, component: p.component, meta: { title: p.title } })),
    { path: '/:pathMatch(.*)*', redirect: '/' },
  ],
})

router.beforeEach(async (to) => {
  if (!session.loaded) await loadSession()
  if (to.meta.public) return true
  if (!session.role) return { name: 'login', query: { next: to.fullPath } }
  return true
})

router.afterEach((to) => {
  document.title = `${to.meta.title ? to.meta.title + ' - ' : ''}12345 好差评管理平台`
})
