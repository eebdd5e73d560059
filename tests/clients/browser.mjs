// Browser checks in headless Chromium (Debian's /usr/bin/chromium), driven by playwright-core.
// Usage: node browser.mjs < spec.json, where spec is
//   {"base": URL, "screenshots": DIR, "graphiql": {"apiKey"} | null,
//    "landing": {"url", "cssUrl", "email", "firstName", "successMessage"} | null}
// Prints {"checks": [[name, ok, detail], ...], "screenshots": [path, ...]}; run.py reports them.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { chromium } from 'playwright-core'

const spec = JSON.parse(readFileSync(0, 'utf8'))
const checks = []
const screenshots = []
const check = (name, ok, detail = '') => { checks.push([name, Boolean(ok), detail]); return ok }
const DESKTOP = { viewport: { width: 1280, height: 800 } }
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 }
const px = (b) => b ? `top ${b.top.toFixed(1)} bottom ${b.bottom.toFixed(1)} left ${b.left.toFixed(1)}` : 'none'
const oneLine = (e) => `${e.name}: ${String(e.message).split('\n')[0]}`

async function shot(page, file) {
  const path = join(spec.screenshots, file)
  await page.screenshot({ path, fullPage: true })
  screenshots.push(path)
}

// Runs a part; an exception (a selector that never shows, a timeout) is one FAIL with its reason.
async function part(name, fn) {
  try { await fn() } catch (e) { check(name, false, oneLine(e)) }
}

// ---- GraphiQL, served by the binary itself, with every request off 127.0.0.1 refused.
const QUERY = 'section[aria-label="Query Editor"] .CodeMirror'
const HEADERS = '.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror'
const RESULT = '.graphiql-response .CodeMirror'

async function graphiql(browser, { apiKey }) {
  const context = await browser.newContext(DESKTOP)
  context.setDefaultTimeout(10000)
  const outside = []
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url())
    if (url.hostname === '127.0.0.1') return route.continue()
    outside.push(url.href)
    return route.abort()
  })
  const page = await context.newPage()
  const value = (sel) => page.evaluate((sel) => document.querySelector(sel)?.CodeMirror?.getValue() ?? null, sel)
  const waitValue = async (sel, text, timeout = 10000) => {
    await page.waitForFunction(([sel, text]) => document.querySelector(sel)?.CodeMirror?.getValue().includes(text),
      [sel, text], { timeout }).catch(() => {})
    return value(sel)
  }
  const tabs = () => page.evaluate(() => {
    const state = JSON.parse(localStorage.getItem('graphiql:tabState') ?? '{"tabs": []}')
    return `${state.tabs.length} tab(s), tab ${state.activeTabIndex} active`
  })
  await part('GraphiQL: page loads', async () => {
    await page.goto(`${spec.base}/graphql`)
    check('GraphiQL: renders (.graphiql-container)',
      await page.waitForSelector('.graphiql-container').then(() => true, () => false))
    const query = await waitValue(QUERY, 'query FirstContacts')
    check('GraphiQL: query editor shows the example query', query?.includes('query FirstContacts'),
      query === null ? 'no query editor' : `starts ${JSON.stringify(query.slice(0, 60))}`)
    const headers = await waitValue(HEADERS, 'Authorization')
    check('GraphiQL: headers pane open, holding Authorization', headers?.includes('Authorization'),
      JSON.stringify(headers))
  })
  await part('GraphiQL: run the query with the API key', async () => {
    const headers = JSON.stringify({ Authorization: `Bearer ${apiKey}` }, null, 2)
    await page.evaluate(([sel, v]) => document.querySelector(sel).CodeMirror.setValue(v), [HEADERS, headers])
    await page.click('.graphiql-execute-button')
    const result = await waitValue(RESULT, '"contacts"')
    check('GraphiQL: the run button answers with contacts, no error',
      result?.includes('"contacts"') && !result.includes('"errors"'), JSON.stringify((result ?? '').slice(0, 200)))
  })
  await part('GraphiQL: Docs after a reload', async () => {
    // GraphiQL keeps the headers in localStorage after a 500 ms debounce, as a person would wait.
    await page.waitForFunction((key) => localStorage.getItem('graphiql:headers')?.includes(key), apiKey).catch(() => {})
    await page.reload()
    await page.waitForSelector('.graphiql-container')
    await page.click('[aria-label="Show Documentation Explorer"]')
    const docs = page.locator('.graphiql-doc-explorer')
    const listed = await docs.getByText('Query', { exact: true }).first().waitFor().then(() => true, () => false)
    const text = (await docs.innerText().catch(() => '')).replace(/\s+/g, ' ').slice(0, 120)
    check('GraphiQL: after a reload, the Docs explorer lists Query', listed, `${JSON.stringify(text)}; ${await tabs()}`)
    await page.click('.graphiql-execute-button') // the kept key answers too; and fills the screenshot
    const result = await waitValue(RESULT, '"contacts"')
    check('GraphiQL: after a reload, the kept key runs the query',
      result?.includes('"contacts"') && !result.includes('"errors"'), JSON.stringify((result ?? '').slice(0, 120)))
    await shot(page, 'graphiql.png')
  })
  await part('GraphiQL: a second reload', async () => {
    await page.reload()
    await page.waitForSelector('.graphiql-container')
    const headers = await waitValue(HEADERS, apiKey, 3000)
    check('GraphiQL: after a second reload, the active tab still sends the API key', headers?.includes(apiKey),
      `${await tabs()}; headers editor ${JSON.stringify(headers)}`)
  })
  check('GraphiQL: no request left 127.0.0.1', outside.length === 0, outside.slice(0, 5).join(', '))
  await context.close()
}

// ---- A landing page with a form: the default stylesheet's layout, then submitting it.
function measure(page) {
  return page.evaluate(() => {
    const box = (e) => {
      const r = e.getBoundingClientRect()
      return { top: r.top, bottom: r.bottom, left: r.left, width: r.width, height: r.height }
    }
    const clear = (c) => c === 'transparent' || c === 'rgba(0, 0, 0, 0)'
    const background = (e) => getComputedStyle(e).backgroundColor
    const controls = [...document.querySelectorAll('form.vx-form :is(input, select, textarea)')]
      .filter((e) => e.type !== 'hidden' && !e.closest('[aria-hidden="true"]') && e.getBoundingClientRect().right > 0)
    const button = document.querySelector('form.vx-form button[type=submit]')
    return {
      scrollWidth: document.documentElement.scrollWidth,
      innerWidth: window.innerWidth,
      fontSize: parseFloat(getComputedStyle(document.body).fontSize),
      pageBackground: [document.body, document.documentElement].map(background).find((c) => !clear(c))
        ?? 'rgb(255, 255, 255)',
      fields: controls.map((e) => ({ name: e.name, type: e.type, box: box(e), label: e.labels[0] ? box(e.labels[0]) : null })),
      button: button && { box: box(button), visible: button.checkVisibility(), background: background(button) },
    }
  })
}

function checkLayout(label, m) {
  const name = (what) => `landing page (${label}): ${what}`
  check(name('no horizontal overflow'), m.scrollWidth <= m.innerWidth,
    `scrollWidth ${m.scrollWidth}, innerWidth ${m.innerWidth}`)
  const boxes = m.fields.filter((f) => f.type !== 'checkbox' && f.type !== 'radio')
  const beside = boxes.filter((f) =>
    !f.label || f.label.bottom > f.box.top + 0.5 || Math.abs(f.label.left - f.box.left) > 2)
  check(name('every label above its input, same left'), boxes.length && !beside.length,
    beside.map((f) => `${f.name}: label ${px(f.label)}; input ${px(f.box)}`).join(' | ') || `${boxes.length} fields`)
  const shared = m.fields.filter((f, i) => i > 0 && f.box.top < m.fields[i - 1].box.bottom - 0.5)
  check(name('one field per row'), m.fields.length && !shared.length,
    shared.map((f) => `${f.name} (${px(f.box)}) beside the one before`).join(' | ') || `${m.fields.length} controls`)
  const minWidth = label === 'phone' ? 0.8 * m.innerWidth : 0
  const small = boxes.filter((f) => f.box.height < 40 || f.box.width < minWidth)
  check(name(`inputs at least 40 px tall${minWidth ? ' and 80% of the width' : ''}`), boxes.length && !small.length,
    small.map((f) => `${f.name}: ${f.box.width.toFixed(0)}x${f.box.height.toFixed(0)}`).join(', ')
      || `${boxes.length} inputs`)
  const b = m.button
  check(name('submit button visible, at least 40 px tall, its own background'),
    b?.visible && b.box.height >= 40 && b.background !== m.pageBackground,
    b ? `height ${b.box.height.toFixed(0)}, background ${b.background} on ${m.pageBackground}`
      : 'no form.vx-form button[type=submit]')
  check(name('body font-size at least 16 px'), m.fontSize >= 16, `${m.fontSize}px`)
}

// Fills and submits the form by its button; `relaxed` turns the browser's own validation off.
async function submit(page, values, relaxed) {
  if (relaxed) {
    await page.evaluate(() => {
      const form = document.querySelector('form.vx-form')
      form.noValidate = true
      for (const e of form.querySelectorAll('[required]')) e.required = false
      form.querySelector('[name=email]').type = 'text'
    })
  }
  for (const [name, value] of Object.entries(values)) await page.fill(`form.vx-form [name="${name}"]`, value)
  const invalid = await page.$$eval('form.vx-form [name]:invalid', (es) => es.map((e) => `${e.name}: ${e.validationMessage}`))
  if (invalid.length) throw new Error(`the browser will not submit: ${invalid.join('; ')}`)
  const [response] = await Promise.all([page.waitForNavigation(), page.click('form.vx-form button[type=submit]')])
  const type = response.headers()['content-type'] ?? ''
  const text = await page.evaluate(() => document.body.innerText)
  return { status: response.status(), type, html: type.startsWith('text/html'), text: text.replace(/\s+/g, ' ').trim() }
}

async function landing(browser, spec) {
  for (const [label, options] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    const context = await browser.newContext(options)
    context.setDefaultTimeout(10000)
    const page = await context.newPage()
    await part(`landing page (${label}): opens`, async () => {
      const response = await page.goto(spec.url)
      const found = response.status() === 200 && await page.$('form.vx-form')
      if (!check(`landing page (${label}): 200 with a form.vx-form`, found, `status ${response.status()}`)) return
      checkLayout(label, await measure(page))
      await shot(page, `landing-${label}.png`)
    })
    if (label === 'phone') await submissions(page, spec)
    await context.close()
  }
  await part('landing page with its own css', async () => {
    const page = await browser.newPage()
    await page.goto(spec.cssUrl)
    const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor)
    check('landing page with its own css: body background applied', background === 'rgb(1, 2, 3)',
      `body background ${background}`)
    await page.close()
  })
}

async function submissions(page, { url, email, firstName, successMessage }) {
  await part('browser submit, invalid e-mail', async () => {
    const r = await submit(page, { email: 'not-an-email', firstName }, true)
    check('browser submit, invalid e-mail: 422 and an HTML page', r.status === 422 && r.html,
      `status ${r.status}, ${r.type}, shows ${JSON.stringify(r.text.slice(0, 120))}`)
    const dom = await page.evaluate(() => {
      const form = document.querySelector('form.vx-form')
      const input = form?.querySelector('[name=email]')
      const field = input?.closest('.vx-field')
      return {
        form: Boolean(form), firstName: form?.querySelector('[name=firstName]')?.value ?? null,
        invalid: input?.getAttribute('aria-invalid') ?? null,
        error: field?.querySelector('.vx-error')?.textContent.trim() ?? null,
        html: (field ?? input?.parentElement)?.outerHTML.slice(0, 400) ?? null,
      }
    })
    check('browser submit, invalid e-mail: the form again, first name kept', dom.form && dom.firstName === firstName,
      dom.form ? `firstName value ${JSON.stringify(dom.firstName)}` : 'no form.vx-form on the answer')
    check('browser submit, invalid e-mail: .vx-error in the e-mail .vx-field, aria-invalid="true"',
      dom.error && dom.invalid === 'true', `error ${JSON.stringify(dom.error)}, aria-invalid ${dom.invalid}; ${dom.html}`)
    await shot(page, 'form-error-phone.png')
  })
  await part('browser submit, valid', async () => {
    if (!await page.$('form.vx-form')) await page.goto(url) // the error answer had no form: start over
    const r = await submit(page, { email, firstName, company: 'Acme Ltd' }, false)
    check('browser submit, valid: 200, an HTML page with the success message',
      r.status === 200 && r.html && r.text.includes(successMessage),
      `status ${r.status}, ${r.type}, shows ${JSON.stringify(r.text.slice(0, 120))}`)
  })
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] })
try {
  if (spec.graphiql) await part('GraphiQL', () => graphiql(browser, spec.graphiql))
  if (spec.landing) await part('landing page', () => landing(browser, spec.landing))
} finally {
  await browser.close()
}
console.log(JSON.stringify({ checks, screenshots }))
