<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8">
    <title>cheesecellar {{version}}</title>
  </head>
  <body>
    <h1>cheesecellar {{version}}: a private Python package index</h1>
% if count is not None:
    <p>This index serves {{count}} project(s); see the <a href="simple/">simple index</a>.</p>
% else:
    <p>See the <a href="simple/">simple index</a>.</p>
% end
    <h2>Install packages from it</h2>
    <pre>pip install --extra-index-url {{simple}} --trusted-host {{host}} PACKAGE</pre>
    <p>or in <code>pip.conf</code> (<code>~/.config/pip/pip.conf</code>):</p>
    <pre>[global]
extra-index-url = {{simple}}
trusted-host = {{host}}</pre>
    <h2>Upload packages to it</h2>
    <pre>twine upload --repository-url {{url}} -u USER -p PASSWORD dist/*</pre>
  </body>
</html>
