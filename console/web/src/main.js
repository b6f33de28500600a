import { createApp } from 'vue'
import ElementPlus from 'element-plus'
import zhCn from 'element-plus/es/locale/lang/zh-cn'
import 'element-plus/dist/index.css'
import App from './App.vue'
import { ApiError } from './api.js'
import { router } from './router.js'
import './style.css'

// A 401 has already sent the user to the login page (api.js); a page's request still in flight
// when the session ended is not an error worth reporting, anything else is.
const handledElsewhere = (err) => err instanceof ApiError && err.status === 401

const app = createApp(App)
app.config.errorHandler = (err) => {
  if (!handledElsewhere(err)) console.error(err)
}
window.addEventListener('unhandledrejection', (ev) => {
  if (handledElsewhere(ev.reason)) ev.preventDefault()
})
app.use(ElementPlus, { locale: zhCn }).use(router).mount('#app')
