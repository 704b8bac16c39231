<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8">
    <meta name="pypi:repository-version" content="{{api_version}}">
    <title>Simple index</title>
  </head>
  <body>
    <h1>Simple index</h1>
% for normalized, name in projects:
    <a href="{{quote(normalized)}}/">{{name}}</a><br>
% end
  </body>
</html>
