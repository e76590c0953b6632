// A local model provider for the browser tests, speaking OpenAI's chat completions
// protocol on 127.0.0.1:$MOCK_PROVIDER_PORT. It answers with the last user message
// (the rendered prompt) after 30 ms, and counts tokens as words.
import http from 'node:http';

const port = Number(process.env.MOCK_PROVIDER_PORT ?? 4017);
const words = (s) => s.split(/\s+/).filter(Boolean).length;

http
  .createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/health') {
      res.end('ok');
      return;
    }
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'not found' } }));
        return;
      }
      const request = JSON.parse(body);
      const messages = request.messages ?? [];
      const last = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
      const input = messages.reduce((n, m) => n + words(m.content ?? ''), 0);
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({
          id: 'chatcmpl-e2e', object: 'chat.completion', model: request.model,
          choices: [{ index: 0, message: { role: 'assistant', content: last }, finish_reason: 'stop' }],
          usage: { prompt_tokens: input, completion_tokens: words(last), total_tokens: input + words(last) },
        }));
      }, 30);
    });
  })
  .listen(port, '127.0.0.1');
