<!DOCTYPE html>
<html>
  <head>
    <meta charset="utf-8">
    <title>Index of packages</title>
  </head>
  <body>
    <h1>Index of packages</h1>
% for filename in filenames:
    <a href="{{quote(filename)}}">{{filename}}</a><br>
% end
  </body>
</html>
