-- Headless Neovim as a user would drive agentls: start `agentls serve` for a workspace, open a
-- file, select lines, ask for code actions, run the reviewer's, and record what the editor saw
-- ($/progress, window/logMessage, agentls/* notifications, the command's answer) into a JSON file.
--
-- Environment: AGENTLS_TEST_PYTHON (interpreter with agentls), AGENTLS_TEST_WORKSPACE,
-- AGENTLS_TEST_FILE, AGENTLS_TEST_MODEL_URL, AGENTLS_TEST_RECORD (the JSON file to write),
-- AGENTLS_TEST_TIMEOUT_MS (default 30000).

local env = vim.env
local record = {
  nvim = tostring(vim.version()),
  progress = {},
  log = {},
  events = {},
  outputs = {},
  actions = {},
  result = vim.NIL,
  errors = {},
}
local done = false

local function finish(reason)
  if done then
    return
  end
  done = true
  record.finished_because = reason
  for _, client in ipairs(vim.lsp.get_clients({ name = 'agentls' })) do
    client:stop()
  end
  vim.wait(3000, function()
    return #vim.lsp.get_clients({ name = 'agentls' }) == 0
  end, 50)
  vim.fn.writefile({ vim.json.encode(record) }, env.AGENTLS_TEST_RECORD)
  vim.cmd('qall!')
end

vim.defer_fn(function()
  table.insert(record.errors, 'timed out')
  finish('timeout')
end, tonumber(env.AGENTLS_TEST_TIMEOUT_MS or '30000'))

-- Everything a generic client gets: progress through LspProgress, the audit trail as log lines.
vim.api.nvim_create_autocmd('LspProgress', {
  callback = function(ev)
    local value = ev.data.params.value
    table.insert(record.progress, {
      token = ev.data.params.token,
      kind = value.kind,
      title = value.title,
      message = value.message,
      cancellable = value.cancellable,
    })
  end,
})

local default_log = vim.lsp.handlers['window/logMessage']
vim.lsp.handlers['window/logMessage'] = function(err, result, ctx)
  table.insert(record.log, result.message)
  return default_log(err, result, ctx)
end
vim.lsp.handlers['agentls/event'] = function(_, result)
  table.insert(record.events, result.kind)
end
vim.lsp.handlers['agentls/output'] = function(_, result)
  table.insert(record.outputs, result.delta)
end
vim.lsp.handlers['workspace/executeCommand'] = function(err, result)
  if err then
    table.insert(record.errors, err.message)
    finish('command failed')
    return
  end
  record.result = result
  finish('command answered')
end

-- The setup docs/editors.md gives Neovim users (0.11+), with the test's paths.
vim.lsp.config('agentls', {
  cmd = { env.AGENTLS_TEST_PYTHON, '-m', 'agentls', 'serve' },
  root_dir = env.AGENTLS_TEST_WORKSPACE,
  init_options = {
    settings = { baseUrl = env.AGENTLS_TEST_MODEL_URL, model = 'scripted-model', apiKey = 'sk-test' },
  },
  settings = { agentls = { maxOutputTokens = 512 } },
})
vim.lsp.enable('agentls')

-- The user's session: once Neovim has started (filetype detection on), open a file, select, act.
local function scenario()
  vim.cmd.edit(vim.fn.fnameescape(env.AGENTLS_TEST_FILE))
  local bufnr = vim.api.nvim_get_current_buf()
  local client_id
  vim.wait(5000, function()
    local clients = vim.lsp.get_clients({ name = 'agentls', bufnr = bufnr })
    client_id = clients[1] and clients[1].id
    return client_id ~= nil
  end, 20)
  if not client_id then
    table.insert(record.errors, 'agentls did not attach to the buffer')
    finish('no client')
    return
  end

  local attached = vim.wait(10000, function()
    return vim.lsp.buf_is_attached(bufnr, client_id) and vim.lsp.get_client_by_id(client_id).initialized
  end, 20)
  if not attached then
    table.insert(record.errors, 'the server did not initialize')
    finish('no server')
    return
  end

  -- Select lines 1-5 (the total function) in visual line mode, as a user would, and ask for the
  -- code actions of that selection (its marks: headless Neovim leaves visual mode after :normal).
  vim.cmd('normal! 1GV5G\27')
  local first, last = vim.fn.line("'<"), vim.fn.line("'>")
  record.selection = { first, last }
  vim.lsp.buf.code_action({
    range = { start = { first, 0 }, ['end'] = { last, #vim.fn.getline(last) } },
    filter = function(action)
      table.insert(record.actions, action.title)
      return action.title == 'Ask review: Review selection'
    end,
    apply = true,
  })
end

-- nested: the file's BufRead and FileType autocommands (filetype detection, LSP start) must run.
vim.api.nvim_create_autocmd('VimEnter', { once = true, nested = true, callback = scenario })
